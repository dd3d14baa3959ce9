"""Shared fixtures: a Loki emulator per test, a real Loki when LOKI_URL is set, small corpora."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def loki():
    """A Loki emulator configured like the bundle's loki/loki-config.yaml for history imports
    (old samples accepted: the test corpora are dated 2025-12)."""
    from tests.loki_emulator import LokiEmulator
    emu = LokiEmulator(reject_old_samples=False).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small realistic corpus (all types, junk, skewed clocks, late events) and its manifest."""
    from benchmarks.generate_corpus import generate
    out = tmp_path_factory.mktemp("corpus")
    manifest = generate(out, days=5, events=3000, seed=7)
    return out, manifest


@pytest.fixture
def real_loki_url():
    url = os.environ.get("LOKI_URL")
    if not url:
        pytest.skip("LOKI_URL is not set: real-Loki tests need a Loki (see README, 'Testing against a real Loki')")
    return url
