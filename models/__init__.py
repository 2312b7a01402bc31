"""Model manifest and label files, installed as the package data `edgecam.data`."""
