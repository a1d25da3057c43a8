"""Input pipeline: tfds builders -> ArrayRecord -> grain batches (see pipeline.py)."""

from vaegan_jax.data.pipeline import DataError, DatasetInfo, check_raw_files, dataset_info, eval_images, prepare, split_arrays, train_iterator

__all__ = ["DataError", "DatasetInfo", "check_raw_files", "dataset_info", "eval_images", "prepare", "split_arrays", "train_iterator"]
