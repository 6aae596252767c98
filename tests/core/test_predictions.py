import numpy as np

from pipeline.core import predictions


def test_soft_vote_averages_probabilities():
    a = np.array([[0.9, 0.1] + [0] * 8, [0.2, 0.8] + [0] * 8])
    b = np.array([[0.3, 0.7] + [0] * 8, [0.4, 0.6] + [0] * 8])
    vote = predictions.soft_vote([a, b])
    assert np.allclose(vote[:, :2], [[0.6, 0.4], [0.3, 0.7]])


def test_soft_vote_is_not_a_majority_vote():
    # one confident fold against two that lean the other way: a majority vote says 1, the mean says 0
    sure = np.array([[0.9, 0.1] + [0] * 8])
    lean = np.array([[0.45, 0.55] + [0] * 8])
    hard = np.bincount([p.argmax() for p in (sure, lean, lean)], minlength=10).argmax()
    assert hard == 1
    assert predictions.soft_vote([sure, lean, lean]).argmax(1).tolist() == [0]


def test_out_of_fold_and_summary():
    y = np.array([0, 1, 2, 3, 3])
    eye = np.eye(10, dtype=np.float32)
    oof = predictions.out_of_fold(6, [(np.array([0, 1]), eye[[0, 1]]), (np.array([2, 3, 4]), eye[[2, 3, 5]])])
    assert np.isnan(oof[5]).all()
    s = predictions.summarise(np.append(y, 9), oof)
    assert s["oof_rows"] == 5 and s["oof_accuracy"] == 0.8
    assert s["per_class_accuracy"][:4] == [1.0, 1.0, 1.0, 0.5] and s["per_class_accuracy"][9] is None
    cm = np.array(s["confusion_matrix"])
    assert cm[3, 5] == 1 and cm[3, 3] == 1 and cm.sum() == 5
