"""What is on disk: the model versions under each root, and the server configs that say which
of them the server loads."""
