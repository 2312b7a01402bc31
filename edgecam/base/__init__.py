"""Options, errors, progress, images, atomic files and machine facts: what every layer uses."""
