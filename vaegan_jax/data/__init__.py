"""Input pipeline: tfds builders -> ArrayRecord -> grain batches (see pipeline.py)."""

from vaegan_jax.data.pipeline import DatasetInfo, dataset_info, eval_images, prepare, split_arrays, train_iterator

__all__ = ["DatasetInfo", "dataset_info", "eval_images", "prepare", "split_arrays", "train_iterator"]
