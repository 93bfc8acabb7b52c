"""Chief/worker search: real processes on loopback, started by the launcher.

Every process of a search imports TensorFlow and the chief traces the
controller's update, which costs seconds each on a busy machine; so one
search (`faults`) hosts the three events the module checks: a chief and two
workers complete it, worker1 is killed mid-trial, the chief is killed and
restarted. The other tests run a chief in a thread of this process.

Run as a script, this file is the search every process runs:
`python tests/test_distributed.py WORKDIR` (the role comes from the environment).
"""

import json
import os
import signal
import sys
import threading
import time

import keras_tuner
import numpy as np
import pytest

HERE = os.path.abspath(__file__)
MAX_TRIALS = 8


# ------------------------------------------------------------------ the search
def _mark(workdir, name, payload):
    os.makedirs(os.path.join(workdir, "marks"), exist_ok=True)
    path = os.path.join(workdir, "marks", f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f)
    os.replace(path + ".tmp", path)


def _search(workdir):
    import keras
    import tensorflow as tf

    import keras_rlnas

    role = os.environ["KERASTUNER_TUNER_ID"]
    _mark(workdir, f"start-{role}-{os.getpid()}", {"pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")})
    runs = []

    def build(hp):
        units = hp.Choice("units", [2, 4, 8])
        hp.Choice("a", list(range(8)))
        strategy = type(tf.distribute.get_strategy()).__name__
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units, name=strategy)])

    class Search(keras_rlnas.RLSearch):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            for _ in range(1200 if role == "worker0" and not runs else 0):
                if _marks(workdir, "start-worker1"):
                    break  # worker1 is up and will have a trial to be killed in.
                time.sleep(0.05)
            runs.append(trial.trial_id)
            score = hp.get("a") + hp.get("units") / 10
            _mark(workdir, f"run-{trial.trial_id}-{role}-{os.getpid()}", {"pid": os.getpid(), "score": score})
            if len(runs) == 1:
                # Built as Keras Tuner builds a child: in the tuner's distribution strategy.
                _mark(workdir, f"strategy-{role}", {"strategy": self._try_build(hp).layers[0].name})
            if trial.trial_id == "1":
                raise keras_tuner.errors.FailedTrialError(f"boom on {role}")
            if role == "worker1" and not _marks(workdir, "hold"):
                _mark(workdir, "hold", {"pid": os.getpid(), "trial": trial.trial_id})
                time.sleep(120)  # Until the test kills this worker.
            time.sleep(0.5)
            return {"score": score}

    tuner = Search(
        hypermodel=build,
        objective=keras_tuner.Objective("score", "max"),
        max_trials=MAX_TRIALS,
        seed=3,
        update_every=2,
        max_consecutive_failed_trials=5,
        trial_timeout=3.0,
        # XLA doubles the cost of the chief's first update (traced twice here).
        controller_options={"jit_compile": False},
        distribution_strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
        directory=workdir,
        project_name="search",
        overwrite=True,  # Ignored by workers and by the restarted chief.
    )
    tuner.search(verbose=0)
    oracle = tuner.oracle if role == "chief" else tuner.oracle._oracle
    built = oracle.learner.has_controller
    _mark(workdir, f"end-{role}-{os.getpid()}", {"controller_built": built})
    os._exit(0)  # TensorFlow's own clean-up takes seconds on a busy machine.


# ----------------------------------------------------------------- test tools
def _marks(workdir, prefix):
    folder = os.path.join(workdir, "marks")
    names = sorted(n for n in os.listdir(folder) if n.startswith(prefix)) if os.path.isdir(folder) else []
    out = {}
    for name in names:
        with open(os.path.join(folder, name)) as f:
            out[name[: -len(".json")]] = json.load(f)
    return out


def _logs(workdir):
    folder = os.path.join(workdir, "logs")
    text = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), errors="replace") as f:
            lines = [line for line in f if "I0000" not in line and "E0000" not in line]
        text.append(f"--- {name}\n{''.join(lines)[-3000:]}")
    return "\n".join(text)


def _oracle_json(workdir):
    try:
        with open(os.path.join(workdir, "search", "oracle.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _wait_for(condition, timeout, run, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.is_alive():
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"Gave up waiting for {what}.\n{_logs(run.workdir)}")


class Launch(threading.Thread):
    """`keras_rlnas.distributed.launch` in a thread of this process."""

    def __init__(self, workdir, **kwargs):
        super().__init__(daemon=True)
        self.workdir, self.kwargs = workdir, kwargs
        self.code = None
        self.stop = threading.Event()

    def run(self):
        from keras_rlnas.distributed import launch

        command = [sys.executable, HERE, self.workdir]
        log_dir = os.path.join(self.workdir, "logs")
        self.code = launch(command, workers=2, gpus=["0", "1"], log_dir=log_dir, stop=self.stop, **self.kwargs)


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    """Runs the search: kills worker1 mid-trial, then the chief once it has learned."""
    workdir = str(tmp_path_factory.mktemp("faults"))
    run = Launch(workdir, restarts=0, chief_restarts=1)
    run.start()
    try:
        hold = _wait_for(lambda: _marks(workdir, "hold").get("hold"), 120, run, "a trial on worker1")
        os.kill(hold["pid"], signal.SIGKILL)

        def learned():
            state = _oracle_json(workdir)
            return state if state and len(state["end_order"]) >= 3 and state["controller"]["history"] else None

        at_kill = _wait_for(learned, 120, run, "three trials and an update")
        os.kill(next(iter(_marks(workdir, "start-chief").values()))["pid"], signal.SIGKILL)
        run.join(150)
        assert not run.is_alive(), f"The search did not end.\n{_logs(workdir)}"
        assert run.code == 0, f"launch returned {run.code}\n{_logs(workdir)}"
        yield workdir, hold, at_kill
    finally:
        run.stop.set()
        run.join(30)


def _records(workdir):
    project = os.path.join(workdir, "search")
    with open(os.path.join(project, "oracle.json")) as f:
        oracle = json.load(f)
    trials = {}
    for trial_id in oracle["start_order"]:
        with open(os.path.join(project, f"trial_{trial_id}", "trial.json")) as f:
            trials[trial_id] = json.load(f)
    with np.load(os.path.join(project, oracle["controller"]["file"])) as data:
        meta = json.loads(str(data["__meta__"]))
    return oracle, trials, meta


# ---------------------------------------------------------- the search's tests
def test_chief_and_two_workers_complete_a_search(faults):
    workdir, _, _ = faults
    oracle, trials, meta = _records(workdir)
    assert len(trials) == MAX_TRIALS and sorted(oracle["end_order"]) == sorted(trials)
    assert {i: t["status"] for i, t in trials.items() if t["status"] != "COMPLETED"} == {"1": "FAILED"}
    # The worker's traceback reached the chief's records.
    assert "FailedTrialError: boom on worker" in trials["1"]["message"]
    starts, ends = _marks(workdir, "start-"), _marks(workdir, "end-")
    assert sorted(m["gpus"] for n, m in starts.items() if "worker" in n) == ["0", "1"]
    assert {m["gpus"] for n, m in starts.items() if "chief" in n} == {""}
    # Only the chief built a controller (worker1 was killed before its end).
    assert {n.split("-")[1]: m["controller_built"] for n, m in ends.items()} == {"chief": True, "worker0": False}
    assert {m["strategy"] for m in _marks(workdir, "strategy-worker").values()} == {"OneDeviceStrategy"}


def test_a_killed_worker_loses_no_trial(faults):
    workdir, hold, _ = faults
    oracle, trials, _ = _records(workdir)
    assert trials[hold["trial"]]["status"] == "COMPLETED"
    assert oracle["leases"]["lost_runs"] == {hold["trial"]: 1}
    held_runs = _marks(workdir, f"run-{hold['trial']}-")
    assert sorted(name.split("-")[2] for name in held_runs) == ["worker0", "worker1"]


def test_a_restarted_chief_loses_no_trial_and_no_update(faults):
    workdir, hold, at_kill = faults
    oracle, trials, meta = _records(workdir)
    assert len(_marks(workdir, "start-chief")) == 2 and len(at_kill["end_order"]) < MAX_TRIALS
    # What the killed chief had recorded is still there, as it was.
    assert oracle["end_order"][: len(at_kill["end_order"])] == at_kill["end_order"]
    assert oracle["controller"]["history"][: len(at_kill["controller"]["history"])] == at_kill["controller"]["history"]
    # The workers carried on: no trial ran twice (but the one lost with worker1)...
    runs = _marks(workdir, "run-")
    assert sorted(n.split("-")[1] for n in runs) == sorted([*trials, hold["trial"]])
    for name, run in runs.items():
        trial = trials[name.split("-")[1]]
        assert trial["status"] == "FAILED" or trial["score"] == pytest.approx(run["score"])
    # ...every trial was learned from once (but a failure that ended before any reward, which has
    # no fair penalty yet), and the controller holds every update.
    state = oracle["controller"]
    assert sorted(state["rewarded"]) == sorted(trials)
    learned = [t for u in state["history"] for t in u["trials"]] + [p["trial"] for p in state["pending"]]
    first_reward = next(i for i, t in enumerate(oracle["end_order"]) if trials[t]["status"] == "COMPLETED")
    unlearned = {t for t in oracle["end_order"][:first_reward] if trials[t]["status"] == "FAILED"}
    assert sorted(t for t in learned if t is not None) == sorted(set(trials) - unlearned)
    assert meta["num_updates"] == len(state["history"]) >= MAX_TRIALS // 2


# ------------------------------------------------------ a chief in this process
@pytest.fixture
def chief(tmp_path, monkeypatch):
    """A ControllerOracle served in a thread; its only trial runs on 'busy'."""
    from keras_rlnas import ControllerOracle
    from keras_rlnas.distributed import launcher, serve

    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(launcher.free_port()))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    oracle = ControllerOracle(keras_tuner.Objective("score", "max"), max_trials=1, seed=0, trial_timeout=2.0)
    oracle.hyperparameters.Choice("a", [0, 1, 2])
    oracle._set_project_dir(str(tmp_path), "p")
    thread = threading.Thread(target=serve, args=(oracle,), kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield oracle, thread
    oracle.abort_message = "test over"
    thread.join(10)


def _client(oracle):
    from keras_rlnas.distributed import WorkerClient

    return WorkerClient(oracle, heartbeat_interval=0.2)


def test_a_waiting_worker_backs_off_and_hears_stop(chief):
    oracle, thread = chief
    client = _client(oracle)
    busy = client.create_trial("busy")
    assert busy.status == "RUNNING"
    start, calls = time.monotonic(), 0
    while time.monotonic() - start < 2.5:
        assert client.create_trial("idle").status == "IDLE"
        calls += 1
    # Sleeps of 0.1, 0.2, 0.4, 0.8, 1 s: a handful of calls, where Keras Tuner makes thousands.
    assert 3 <= calls <= 7 and oracle.idle_answers == calls
    busy.status = "COMPLETED"
    client.update_trial(busy.trial_id, {"score": 1.0})
    client.end_trial(busy)
    assert client.create_trial("idle").status == "STOPPED"
    assert client.create_trial("busy").status == "STOPPED"
    thread.join(10)
    assert not thread.is_alive()
    assert oracle.trials[busy.trial_id].status == "COMPLETED" and oracle.trials[busy.trial_id].score == 1.0
    # After `recycle_after` trials a worker exits, between trials, for the launcher to restart it.
    assert client.trials_ended == 1
    client.recycle_after = 1
    with pytest.raises(SystemExit) as exit_info:
        client.create_trial("busy")
    assert exit_info.value.code == 75


def test_heartbeats_keep_a_lease_and_silence_loses_it(chief):
    oracle, _ = chief
    client = _client(oracle)
    trial = client.create_trial("w")
    time.sleep(3.0)  # Longer than trial_timeout, with heartbeats.
    assert oracle.ongoing_trials["w"].trial_id == trial.trial_id and not oracle.lost_runs
    client.close()  # Silence, as from a killed worker.
    deadline = time.monotonic() + 10
    while "w" in oracle.ongoing_trials and time.monotonic() < deadline:
        time.sleep(0.05)
    assert oracle.lost_runs == {trial.trial_id: 1} and oracle._retry_queue == [trial.trial_id]
    # A repeated or unknown end changes nothing; an update of an unknown trial raises, holding no lock.
    with pytest.raises(KeyError, match="nope"):
        oracle.update_trial("nope", {"score": 1.0})
    oracle.end_trial(keras_tuner.engine.trial.Trial(oracle.get_space(), trial_id="nope", status="COMPLETED"))
    assert set(oracle.trials) == {trial.trial_id} and oracle.end_order == []


def test_calls_cut_off_by_a_restarting_chief_are_made_again():
    import grpc

    from keras_rlnas.distributed.client import _RetryingStub

    class Cut(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

    calls = []

    class Stub:
        def EndTrial(self, request, wait_for_ready, timeout):
            calls.append(request)
            if len(calls) < 3:
                raise Cut(grpc.StatusCode.UNAVAILABLE)  # "Socket closed": the chief died mid-call.
            return "ended"

        def GetTrial(self, request, wait_for_ready, timeout):
            raise Cut(grpc.StatusCode.UNKNOWN)  # The chief answered with an error.

    stub = _RetryingStub(Stub(), timeout=30)
    assert stub.EndTrial("request", timeout=99) == "ended" and calls == ["request"] * 3
    with pytest.raises(grpc.RpcError):
        stub.GetTrial("request")


def test_a_crash_before_oracle_json_resumes_the_committed_controller(tmp_path):
    from keras_rlnas import ControllerOracle

    def oracle():
        made = ControllerOracle(keras_tuner.Objective("score", "max"), max_trials=9, seed=5, update_every=100)
        made.hyperparameters.Choice("a", list(range(10)))
        made.hyperparameters.Choice("b", list(range(10)))
        made._set_project_dir(str(tmp_path), "p")
        return made

    first = oracle()
    values = []
    for i in range(3):
        trial = first.create_trial(f"t{i}")
        values.append(trial.hyperparameters.values)
        first.update_trial(trial.trial_id, {"score": float(i)})
        trial.status = "COMPLETED"
        first.end_trial(trial)
    committed = open(os.path.join(first._project_dir, "oracle.json")).read()
    first.create_trial("t3")
    # The crash: the controller file of trial 3 was written, oracle.json was not.
    with open(os.path.join(first._project_dir, "oracle.json"), "w") as f:
        f.write(committed)
    resumed = oracle()
    resumed.reload()
    assert [resumed.trials[t].hyperparameters.values for t in resumed.start_order] == values
    assert resumed.create_trial("t3").hyperparameters.values == first.trials["3"].hyperparameters.values


def test_a_chief_left_without_workers_is_stopped(tmp_path):
    from keras_rlnas.distributed.launcher import Supervised, supervise

    # The chief would wait for trials forever; every worker crashes past its one restart.
    chief = Supervised("chief", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    crew = [Supervised(f"worker{i}", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), restarts=1)
            for i in range(2)]
    started = time.monotonic()
    assert supervise(chief, crew, poll_interval=0.05) == 1
    assert time.monotonic() - started < 30
    assert [worker.starts for worker in crew] == [2, 2] and chief.process.poll() is not None


def test_launcher_sets_roles_gpus_restarts_and_recycles(tmp_path):
    from keras_rlnas.distributed import gpu_groups, main

    assert gpu_groups(["0", "1", "2"], workers=4) == ["0", "1", "2", "0"]
    assert gpu_groups([], workers=2) == [None, None]
    with pytest.raises(ValueError, match="gpus_per_worker.*3"):
        gpu_groups(["0", "1"], workers=1, gpus_per_worker=3)
    # Each start records its environment; worker0 crashes once, worker1 asks to be recycled once.
    (tmp_path / "role.py").write_text(
        "import json, os, sys, time\n"
        "out, tid = sys.argv[1], os.environ['KERASTUNER_TUNER_ID']\n"
        "runs = len([n for n in os.listdir(out) if n.startswith(tid + '.')])\n"
        "json.dump(dict(os.environ), open(os.path.join(out, f'{tid}.{runs}.json'), 'w'))\n"
        "for _ in range(400 if tid == 'chief' else 0):  # The chief outlives the workers' first starts.\n"
        "    if all(os.path.exists(os.path.join(out, n)) for n in ('worker0.1.json', 'worker1.1.json')): break\n"
        "    time.sleep(0.05)\n"
        "sys.exit({('worker0', 0): 3, ('worker1', 0): 75}.get((tid, runs), 0))\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    code = main(["launch", "--workers", "2", "--gpus", "4,5,6,7", "--gpus-per-worker", "2", "--restarts", "1",
                 "--recycle-after", "5", "--", sys.executable, str(tmp_path / "role.py"), str(out)])  # fmt: skip
    assert code == 0
    envs = {name[: -len(".json")]: json.load(open(out / name)) for name in os.listdir(out)}
    assert sorted(envs) == ["chief.0", "worker0.0", "worker0.1", "worker1.0", "worker1.1"]
    assert [envs[n]["CUDA_VISIBLE_DEVICES"] for n in ("chief.0", "worker0.0", "worker1.1")] == ["", "4,5", "6,7"]
    assert {envs[n]["KERASTUNER_ORACLE_PORT"] for n in envs} == {envs["chief.0"]["KERASTUNER_ORACLE_PORT"]}
    # A crashed process resumes; a recycled worker simply starts again.
    assert [envs[n].get("KERAS_RLNAS_RESUME") for n in ("worker0.1", "worker1.1")] == ["1", None]
    assert envs["worker1.0"]["KERAS_RLNAS_RECYCLE_AFTER"] == "5" and "KERAS_RLNAS_RECYCLE_AFTER" not in envs["chief.0"]
    with pytest.raises(SystemExit, match="after `--`"):
        main(["launch", "python", "search.py"])
    with pytest.raises(ValueError, match="must not contain 'chief'.*'chief2'"):
        main(["worker", "--chief", "h:1", "--id", "chief2", "--", "true"])
    # Recycling before the first trial would restart a worker forever.
    from keras_rlnas.distributed import launch

    with pytest.raises(ValueError, match="recycle_after.*-1"):
        launch(["true"], recycle_after=-1)
    with pytest.raises(SystemExit):
        main(["launch", "--recycle-after", "0", "--", "true"])
    with pytest.raises(ValueError, match="restarts.*-1"):
        launch(["true"], restarts=-1)
    with pytest.raises(ValueError, match="chief_restarts.*-2"):
        launch(["true"], chief_restarts=-2)
    for flag, value in (("--restarts", "-1"), ("--workers", "0"), ("--gpus-per-worker", "0"), ("--chief-restarts", "x")):
        with pytest.raises(SystemExit):
            main(["launch", flag, value, "--", "true"])


if __name__ == "__main__":
    _search(sys.argv[1])
