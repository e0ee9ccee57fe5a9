"""Model predictions in: segmentation masks from a model (NIfTI) stored per case and compared with the crowd."""
