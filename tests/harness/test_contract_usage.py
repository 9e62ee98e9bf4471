"""The harness uses a built method only through the declared contract (`harness.api.Segmenter` and the
`ProposalSource` capability): no module under harness/ reads or sets any other attribute of a segmenter.

Checked on the source: inside each function, a segmenter is a name called ``segmenter``, any ``X.segmenter``, and
any name assigned from one of those; every attribute taken from it (``seg.x``, ``getattr(seg, "x")``,
``hasattr``, ``setattr``) must be a protocol member. What a helper does with a segmenter passed as an argument of
another name is out of this check's sight (harness has one: the FLOP counter's ``no_grad_params(module)``, which
uses ``parameters()``, a protocol member)."""

from __future__ import annotations

import ast
from pathlib import Path

from harness.api import ProposalSource, Segmenter

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def protocol_members(*protocols) -> set[str]:
    members: set[str] = set()
    for protocol in protocols:
        members |= {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)
    return members


ALLOWED = protocol_members(Segmenter, ProposalSource)


def _is_segmenter(node: ast.AST, names: set[str]) -> bool:
    return ((isinstance(node, ast.Name) and node.id in names)
            or (isinstance(node, ast.Attribute) and node.attr == "segmenter"))


def violations(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: attribute`` for every non-contract attribute taken from a segmenter in ``source``."""
    found = []
    for function in ast.walk(ast.parse(source, filename)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            continue
        names = {"segmenter"}
        for node in ast.walk(function):  # names bound to a segmenter (seg = fitted.segmenter)
            if isinstance(node, ast.Assign) and _is_segmenter(node.value, names):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(function):
            attr = None
            if isinstance(node, ast.Attribute) and _is_segmenter(node.value, names):
                attr = node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and _is_segmenter(node.args[0], names) and isinstance(node.args[1], ast.Constant)):
                attr = node.args[1].value
            if attr is not None and attr not in ALLOWED:
                found.append(f"{filename}:{node.lineno}: {attr}")
    return sorted(set(found))


def test_protocol_members_are_what_the_docs_say():
    assert ALLOWED == {"counts", "device", "predict", "predict_batch", "prepare_for_timing", "prepare_vocabulary",
                       "parameters", "proposal_masks"}


def test_the_checker_sees_what_the_old_tasks_did():
    old = '''
def run(fitted, info):
    segmenter = fitted.segmenter
    device = segmenter.void_embedding.device
    segmenter.dense = compile(segmenter.dense)
    crops = getattr(segmenter, "last_crops", [])
    masks = fitted.segmenter.proposal_masks(image)
    seg = fitted.segmenter
    return seg.maskformer, segmenter.predict(image, vocab), segmenter.counts
'''
    assert [v.split(": ")[1] for v in violations(old)] == ["void_embedding", "dense", "last_crops", "maskformer"]


def test_harness_uses_only_the_segmenter_contract():
    files = sorted(HARNESS.rglob("*.py"))
    assert len(files) > 30
    found = [v for path in files
             for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(HARNESS.parent)))]
    assert found == [], "harness touches segmenter attributes outside harness.api.Segmenter:\n" + "\n".join(found)


def test_a_benchmarks_vocabulary():
    from harness.data import get_info
    from harness.tasks.common import vocabulary

    coco = get_info("synthetic_coco")
    vocab = vocabulary(coco, zero_shot=True)
    assert vocab.names == tuple(coco.class_names) and vocab.dataset == "synthetic_coco" and vocab.background is None
    assert [i for i, s in enumerate(vocab.seen) if s] == sorted(coco.seen) and len(coco.unseen) > 0
    assert vocabulary(coco, zero_shot=False).seen is None  # cross-dataset: every class counts as unseen
    voc21 = get_info("voc_21")
    assert voc21.has_background and vocabulary(voc21, zero_shot=False).background == 0
