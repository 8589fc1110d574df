"""Checkpoints that hold optimizer state: bit-identical resumption, refused
classes and attributes, file permissions."""

import os
import stat

import numpy as np
import pytest

import knet_st as kt
from knet_st.checkpoint import CheckpointError, load, save

CLASSES = [(kt.SGD, {"lr": 0.1}),
           (kt.Momentum, {"lr": 0.05, "gamma": 0.8}),
           (kt.Nesterov, {"lr": 0.05}),
           (kt.Adagrad, {"lr": 0.1, "gclip": 1.0}),
           (kt.Adadelta, {"rho": 0.8, "weight_decay": 0.01}),
           (kt.Rmsprop, {"lr": 0.01}),
           (kt.Adam, {"lr": 0.01, "beta1": 0.8})]


def _weights():
    r = np.random.default_rng(3)
    return {"W": r.standard_normal((4, 3)).astype(np.float32),
            "layers": [r.standard_normal((3, 1)), 0.5],        # float64, a float
            "labels": np.arange(3)}                             # not trained


def _grads(w, k):
    r = np.random.default_rng(100 + k)
    return {"W": r.standard_normal(w["W"].shape).astype(np.float32),
            "layers": [r.standard_normal(w["layers"][0].shape),
                       float(r.standard_normal())],
            "labels": None}


def _copy(w):
    return {"W": w["W"].copy(), "layers": [w["layers"][0].copy(), w["layers"][1]],
            "labels": w["labels"]}


@pytest.mark.parametrize("cls, kw", CLASSES, ids=[c.__name__ for c, _ in CLASSES])
def test_next_update_after_load_is_bit_identical(tmp_path, cls, kw):
    w = _weights()
    opts = kt.optimizers(w, cls, **kw)
    for k in range(3):
        kt.update(w, _grads(w, k), opts)
    path = tmp_path / "ck.npz"
    save(path, w=w, opts=opts, epoch=3)
    w2, opts2 = load(path, "w", "opts")
    assert type(opts2["W"]) is cls and opts2["labels"] is None
    assert repr(opts2["W"]) == repr(opts["W"])
    for k in range(3, 6):
        kt.update(w, _grads(w, k), opts)
        kt.update(w2, _grads(w2, k), opts2)
        assert w2["W"].dtype == np.float32
        assert w2["W"].tobytes() == w["W"].tobytes()
        assert w2["layers"][0].tobytes() == w["layers"][0].tobytes()
        assert w2["layers"][1] == w["layers"][1]


def test_adam_moments_and_step_count_are_saved(tmp_path):
    w = np.ones((2, 2), np.float32)
    opt = kt.Adam(lr=0.1)
    for _ in range(4):
        opt.step(w, np.full((2, 2), 0.5, np.float32))
    save(tmp_path / "a.npz", opt=opt)
    back = load(tmp_path / "a.npz", "opt")
    assert back.t == 4
    np.testing.assert_array_equal(back._s_m, opt._s_m)
    np.testing.assert_array_equal(back._s_v, opt._s_v)


def test_a_fresh_optimizer_round_trips(tmp_path):
    save(tmp_path / "f.npz", opts=[kt.Adam(), None, kt.SGD(0.3)])
    back = load(tmp_path / "f.npz", "opts")
    assert back[1] is None and back[2].lr == 0.3 and back[0]._s_m is None
    w = np.zeros(2)
    back[0].step(w, np.ones(2))
    assert back[0].t == 1 and w[0] < 0


def test_saved_state_of_another_shape_is_refused(tmp_path):
    opt = kt.Momentum(0.1)
    opt.step(np.zeros(3), np.ones(3))
    save(tmp_path / "m.npz", opt=opt)
    back = load(tmp_path / "m.npz", "opt")
    with pytest.raises(ValueError, match="shape"):
        back.step(np.zeros(4), np.ones(4))


def test_user_optimizer_classes_are_not_saved(tmp_path):
    class Mine(kt.SGD):
        pass
    with pytest.raises(TypeError, match="class Mine"):
        save(tmp_path / "x.npz", opt=Mine())
    assert not (tmp_path / "x.npz").exists()


def _rewrite(path, edit):
    """Loads ``path``'s structure JSON, applies ``edit`` and writes it back."""
    import json
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["__structure__.json"].tobytes())
    edit(meta["root"])
    arrays["__structure__.json"] = np.frombuffer(json.dumps(meta).encode(),
                                                 dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["opt"].update({"class": "os.system"}), "unknown optimizer class"),
    (lambda r: r["opt"]["v"]["keys"].append({"t": "str", "v": "__class__"})
     or r["opt"]["v"]["v"].append({"t": "int", "v": 1}), "no attribute '__class__'"),
    (lambda r: r["opt"]["v"]["v"].__setitem__(0, {"t": "str", "v": "fast"}),
     "not a number"),
    (lambda r: r["opt"].update({"v": {"t": "list", "v": []}}), "malformed optimizer"),
])
def test_tampered_optimizers_are_refused(tmp_path, edit, message):
    path = tmp_path / "t.npz"
    save(path, opt=kt.Adam())
    _rewrite(path, edit)
    with pytest.raises(CheckpointError, match=message):
        load(path)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600),
                                         (0o002, 0o664)])
def test_new_files_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save(tmp_path / "u.npz", x=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "u.npz").st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "r.npz"
    save(path, x=1)
    os.chmod(path, 0o640)
    save(path, x=2)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert load(path, "x") == 2
