"""Input pipeline: tfds builders -> ArrayRecord -> grain batches (see pipeline.py)."""

from vaegan_jax.data.pipeline import DataError, DatasetInfo, check_raw_files, dataset_info, eval_images, info_from_json, info_to_json, prepare, split_arrays, train_iterator

__all__ = ["DataError", "DatasetInfo", "check_raw_files", "dataset_info", "eval_images", "info_from_json", "info_to_json", "prepare", "split_arrays", "train_iterator"]
