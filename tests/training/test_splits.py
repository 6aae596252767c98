import numpy as np

from pipeline.core import config as cfg
from pipeline.core import config_layers
from pipeline.training.splits import fold_seed, make_folds, make_tasks


def test_every_row_validated_once_and_classes_balanced():
    y = np.repeat(np.arange(10), [50, 61, 40, 55, 70, 45, 52, 48, 66, 53])
    folds = make_folds(y, 5, seed=1)
    seen = np.concatenate([va for _, va in folds])
    assert np.array_equal(np.sort(seen), np.arange(len(y)))
    for tr, va in folds:
        assert not set(tr) & set(va)
        expected = np.bincount(y, minlength=10) / 5
        assert np.all(np.abs(np.bincount(y[va], minlength=10) - expected) <= 1)


def test_folds_follow_the_seed():
    y = np.arange(200) % 10
    a, b, c = make_folds(y, 4, 0), make_folds(y, 4, 0), make_folds(y, 4, 1)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, c))


def test_tasks_carry_config_and_distinct_seeds():
    config = config_layers.build(named={"train": {"folds": 3, "seed": 7}})
    tasks = make_tasks(config, np.arange(60) % 10, "run")
    assert [t.index for t in tasks] == [0, 1, 2] and {t.run_id for t in tasks} == {"run"}
    assert len({t.seed for t in tasks}) == 3 and all(t.config is config for t in tasks)


def test_fold_seeds_fit_32_bits_for_every_allowed_seed():
    # seed * 1000 + k overflowed 2**32 from seed 4294968 on; every allowed seed must give usable fold seeds
    for seed in (0, 4294968, 2**31, cfg.MAX_SEED):
        seeds = [fold_seed(seed, k) for k in range(10)]
        assert all(0 <= s < 2**31 for s in seeds) and len(set(seeds)) == 10
    assert fold_seed(42, 0) == fold_seed(42, 0) and fold_seed(42, 0) != fold_seed(43, 0)
