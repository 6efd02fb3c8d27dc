"""rankiqa: learn image quality from rankings (RankIQA, ICCV 2017) — generate, train, fine-tune, score."""
__version__ = "0.1.0"
