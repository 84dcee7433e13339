from fino.launch.threads import available_cores, child_thread_env


def test_each_of_a_workers_runs_gets_an_equal_share_of_the_cores_and_passive_waiting():
    env = child_thread_env(2, environ={})
    assert env == {"OMP_NUM_THREADS": str(max(1, available_cores() // 2)),
                   "OMP_WAIT_POLICY": "PASSIVE"}
    assert child_thread_env(10 * available_cores(), environ={})["OMP_NUM_THREADS"] == "1"


def test_thread_settings_the_user_chose_are_kept():
    env = child_thread_env(2, environ={"OMP_NUM_THREADS": "7", "OMP_WAIT_POLICY": "ACTIVE"})
    assert env == {}


def test_the_fino_command_makes_openmp_wait_passively_before_torch_loads():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", "import os, sys, fino.cli.main; "
         "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"],
        env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["PASSIVE", "False"]
