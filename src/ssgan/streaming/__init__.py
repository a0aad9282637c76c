"""Bounded-memory attack of long files at the input's own rate (``ssgan attack``).

``blocks`` reads a file in blocks (decode, mono, 16 kHz) and scans it; ``output`` writes the
adversarial file at the input's rate, channels and sample format; ``victim`` takes the victim's
clip decision from windows collected on a stream; ``attack`` drives the two passes of one file.
"""

from __future__ import annotations

from ssgan.streaming.attack import StreamResult, attack_file
from ssgan.streaming.blocks import ScanInfo, iter_frame_blocks, iter_mono_blocks, scan_audio
from ssgan.streaming.output import OUTPUT_FORMATS, output_format, output_subtype
from ssgan.streaming.victim import file_logits

__all__ = [
    "OUTPUT_FORMATS",
    "ScanInfo",
    "StreamResult",
    "attack_file",
    "file_logits",
    "iter_frame_blocks",
    "iter_mono_blocks",
    "output_format",
    "output_subtype",
    "scan_audio",
]
