"""Shape families measured on one GPU: the data of the shape-general kernel model (issue 22)."""
