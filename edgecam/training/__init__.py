"""Teaching a network new classes: datasets, cached features, training, evaluation."""
