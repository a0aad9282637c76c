"""Attacks evaluated over a dataset: one loop, its records, summaries and reports.

One module a concept:

- ``loop``: ``evaluate_attack``, the one evaluation loop (untargeted or targeted, sharded under
  torchrun, channel transforms, the 16-bit PCM re-check, transfer victims) and its outputs;
- ``clips``: the dataset's clips, batched by length, and the attack's output checked;
- ``decisions``: a victim's decisions on clean and adversarial clips, and the rates from them;
- ``summary``: the untargeted summary figures, and reading ``records.jsonl`` back;
- ``targeted``: each clip's target, the targeted figures and (true x target) matrix report;
- ``robustness``: decisions after channel transforms (``--transform``);
- ``transfer``: other victims' decisions on the same adversarial clips (``--transfer-to``);
- ``transfer_matrix``: attacks made on each victim scored on every victim, and its report.
"""

from ssgan.evaluation.loop import EvaluationResult, evaluate_attack, evaluate_targeted
from ssgan.evaluation.robustness import (
    resolve_transforms,
    summarize_transforms,
    transform_generator,
)
from ssgan.evaluation.summary import RECORDS_NAME, SUMMARY_NAME, read_records, summarize
from ssgan.evaluation.targeted import summarize_targeted
from ssgan.evaluation.transfer import summarize_transfer
from ssgan.evaluation.transfer_matrix import transfer_matrix

__all__ = [
    "RECORDS_NAME",
    "SUMMARY_NAME",
    "EvaluationResult",
    "evaluate_attack",
    "evaluate_targeted",
    "read_records",
    "resolve_transforms",
    "summarize",
    "summarize_targeted",
    "summarize_transfer",
    "summarize_transforms",
    "transfer_matrix",
    "transform_generator",
]
