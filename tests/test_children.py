"""The helpers that start test processes (tests/children.py): SIGINT interrupts a child even when pytest
itself was started with SIGINT ignored (a background job), and a child a failing test leaves is stopped."""

import signal
import subprocess
import time

import psutil
import pytest

from tests.children import script_argv, stop_tree

REPORT_SIGINT = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)"


def test_a_child_is_interruptible_even_when_sigint_was_inherited_as_ignored():
    saved = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a background job: children inherit SIG_IGN
    try:
        plain = subprocess.run(script_argv("")[:2] + [REPORT_SIGINT], capture_output=True, text=True, check=True)
        ours = subprocess.run(script_argv(REPORT_SIGINT), capture_output=True, text=True, check=True)
    finally:
        signal.signal(signal.SIGINT, saved)
    assert plain.stdout.strip() == "False" and ours.stdout.strip() == "True"


def test_stop_tree_stops_the_child_and_what_it_started():
    started = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    proc = subprocess.Popen(script_argv(started), stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
        time.sleep(0.05)
    (grandchild,) = psutil.Process(proc.pid).children()
    stop_tree(proc)
    assert proc.returncode is not None
    with pytest.raises(psutil.NoSuchProcess):
        grandchild.wait(5)
        psutil.Process(grandchild.pid)
