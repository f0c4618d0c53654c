"""benchmarks/end_of_turn.py's counts beside eot-bench's scores: the work thrown away at pauses the speech
went on after, and turns ended at a gap between words rather than in the inserted hesitation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `from common import ...`

from benchmarks import end_of_turn as eot  # noqa: E402


def sample(pause: tuple[float, float] | None, end_ms: float) -> eot.Sample:
    return eot.Sample("s", "en", np.zeros(16, dtype=np.int16), pause=pause, end_ms=end_ms)


def test_asks_before_the_end_of_speech_are_counted_as_thrown_away():
    """An ask before the sentence's true end means the speech went on: its opinions were thrown away."""
    samples = [sample((1000, 1500), 3000), sample(None, 2000)]
    assert eot.wasted(samples, [[1200, 3200], [2200]]) == (3, 1)


def test_a_turn_ended_between_words_is_counted_apart_from_the_inserted_pause():
    """A stop inside the inserted pause is eot-bench's false cut-off, not this count; a stop before the end
    anywhere else is; a stop at or after the end is the turn's true end."""
    hesitant, whole = sample((1000, 1500), 3000), sample(None, 2000)
    assert eot.ended_between_words([hesitant, whole], [[1200, 3100], [2100]]) == 0
    assert eot.ended_between_words([hesitant, whole], [[600, 3100], [800, 2100]]) == 2
