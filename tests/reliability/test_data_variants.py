"""Second sweep, cause 6: two runs on one data root that want different synthetic data never regenerate it under
each other: each variant lives in a folder keyed by its parameters, generated under a lock."""

import multiprocessing as mp

from harness.data import get_info, open_dataset
from harness.data.synthetic_params import recorded_params
from harness.tasks.common import dataset_root, prepare_synthetic

FORK = mp.get_context("fork")
SMALL = {"n_train": 4, "n_val": 2, "size": 32}
OTHER = {"n_train": 3, "n_val": 3, "size": 40}


def test_variants_get_their_own_folders_and_equal_variants_share_one(tmp_path):
    info = get_info("synthetic_voc")
    small, other = dataset_root(info, tmp_path, SMALL), dataset_root(info, tmp_path, OTHER)
    assert small != other and small.parent == other.parent == tmp_path / "_synthetic"
    # the defaults written out are the same variant as no parameters at all
    assert dataset_root(info, tmp_path, {}) == dataset_root(info, tmp_path, {"n_train": 48, "n_val": 16,
                                                                             "size": 64, "seed": 0})
    assert dataset_root(get_info("voc_21"), tmp_path, SMALL) == tmp_path  # real data stays in the data root


def _use(root, params, barrier, queue):
    info = get_info("synthetic_voc")
    barrier.wait()
    seen = set()
    try:
        for _ in range(3):  # generate (or find), then read every image, while the other variant does the same
            where = prepare_synthetic(info, root, params)
            val = open_dataset(info.name, "val", where)
            seen.add((len(val), tuple(sorted({int(val[i]["image"].shape[-2]) for i in range(len(val))}))))
        queue.put(("ok", seen))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_two_processes_wanting_different_variants_both_read_their_own(tmp_path):
    barrier, queue = FORK.Barrier(2), FORK.Queue()
    procs = [FORK.Process(target=_use, args=(tmp_path, params, barrier, queue)) for params in (SMALL, OTHER)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(r[0] == "ok" for r in results), results
    # each always saw its own data (sets are only partially ordered: sort their contents, not the sets)
    assert sorted(sorted(r[1]) for r in results) == [[(2, (32,))], [(3, (40,))]]
    for params in (SMALL, OTHER):
        assert recorded_params(dataset_root(get_info("synthetic_voc"), tmp_path, params), "synthetic_voc") == \
            {**params, "seed": 0}
