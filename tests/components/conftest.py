"""Tiny random CLIPs shared by the DenseCLIP tests."""

import pytest

from methods.components.weights import build_clip


@pytest.fixture(scope="module")
def clip16():
    return build_clip("tiny-vit-p16", "random", seed=1)[0]


@pytest.fixture(scope="module")
def clip14():
    return build_clip("tiny-vit-p14", "random", seed=2)[0]
