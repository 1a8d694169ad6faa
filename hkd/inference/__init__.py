"""Use a trained model outside its run: load it with its preprocessing, classify new images,
evaluate it on another data set, export it for deployment."""
