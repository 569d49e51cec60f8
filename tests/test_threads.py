"""set_value_checks is local to the thread (context) that sets it (Note [value checks])."""

import threading

import pytest
import torch

import cwy_manifolds as cm

ZERO_COLUMN = torch.zeros(4, 2, dtype=torch.float64)


def _run(*targets):
    """Run targets in threads; re-raise the first exception of any of them."""
    errors = []

    def wrap(target):
        def run():
            try:
                target()
            except BaseException as e:  # re-raised in the main thread
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]


def test_overlapping_with_blocks_in_two_threads():
    """A enters, B enters, A exits, B exits: both restore their own setting."""
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with cm.set_value_checks(False):
            a_in.set()
            b_in.wait(10)
        seen["a-after"] = cm.value_checks_enabled()
        a_out.set()

    def second():
        a_in.wait(10)
        with cm.set_value_checks(False):
            b_in.set()
            a_out.wait(10)
            seen["b-inside"] = cm.value_checks_enabled()
        seen["b-after"] = cm.value_checks_enabled()

    _run(first, second)
    assert seen == {"a-after": True, "b-inside": False, "b-after": True}
    assert cm.value_checks_enabled()


def test_checks_off_in_one_thread_leave_another_thread_checking():
    off, checked = threading.Event(), threading.Event()
    seen = {}

    def lenient():
        cm.set_value_checks(False)  # persistent, in this thread only
        off.set()
        seen["lenient-nan"] = bool(torch.isnan(cm.cwy(ZERO_COLUMN)).any())
        checked.wait(10)

    def strict():
        off.wait(10)
        seen["strict-enabled"] = cm.value_checks_enabled()
        with pytest.raises(ValueError, match="zero column"):
            cm.cwy(ZERO_COLUMN)
        checked.set()

    _run(lenient, strict)
    assert seen == {"lenient-nan": True, "strict-enabled": True}
    assert cm.value_checks_enabled()


def test_reused_context_object():
    ctx = cm.set_value_checks(False)
    with ctx:
        assert not cm.value_checks_enabled()
    assert cm.value_checks_enabled()
    with ctx:  # a second with statement turns them off again
        assert not cm.value_checks_enabled()
        with ctx:  # and nested re-entry restores the outer setting
            assert not cm.value_checks_enabled()
        assert not cm.value_checks_enabled()
    assert cm.value_checks_enabled()


def test_with_restores_the_setting_before_the_call():
    try:
        cm.set_value_checks(False)
        with cm.set_value_checks(True):
            assert cm.value_checks_enabled()
        assert not cm.value_checks_enabled()
    finally:
        cm.set_value_checks(True)


def test_exception_inside_with_restores():
    with pytest.raises(RuntimeError), cm.set_value_checks(False):
        raise RuntimeError
    assert cm.value_checks_enabled()


def test_compiled_code_follows_the_setting():
    """Dynamo guards on the setting: one graph per setting, with an assertion when on."""
    counts = []

    def backend(gm, example_inputs):
        counts.append(1)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(cm.cwy, backend=backend)
    v = torch.randn(4, 2, dtype=torch.float64)
    with cm.set_value_checks(False):
        assert torch.isnan(compiled(ZERO_COLUMN)).any()
        torch.testing.assert_close(compiled(v), cm.cwy(v))
    assert len(counts) == 1  # one graph, no break
    with pytest.raises(RuntimeError, match="v must have finite entries and no zero columns"):
        compiled(ZERO_COLUMN)  # recompiled: the check is an assertion in the graph (CPU)
    torch.testing.assert_close(compiled(v), cm.cwy(v))
    assert len(counts) == 2  # one graph per setting, no break
    torch._dynamo.reset()


def test_compiled_code_follows_the_setting_of_the_calling_thread():
    torch._dynamo.reset()
    compiled = torch.compile(cm.cwy, backend="eager")
    seen = {}

    def lenient():
        with cm.set_value_checks(False):
            seen["nan"] = bool(torch.isnan(compiled(ZERO_COLUMN)).any())

    _run(lenient)
    with pytest.raises(RuntimeError, match="no zero columns"):
        compiled(ZERO_COLUMN)
    assert seen == {"nan": True}
    torch._dynamo.reset()
