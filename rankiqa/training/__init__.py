"""The parts of rank pre-training (``rankiqa.train``) and MOS fine-tuning (``rankiqa.finetune``).

- ``loop``: the one loop both run: a unit of work per step, then callbacks;
- ``objective``: ``SiameseRanker``, the ranking objective as one module;
- ``evaluation``: validation statistics of ranked sets, calibration of the output scale;
- ``data``: data order (a pure function of seed and step) and the training datasets;
- ``state``: ``last.pt``: what it holds, how a run is restored from it;
- ``outputs``: the run folder's CSV files and ``curves.png``;
- ``distributed``: process group and threads under ``torchrun``.
"""
