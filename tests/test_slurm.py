"""The shipped Slurm profile (slurm/config.v8+.yaml): what it asks Slurm for, and a real one-node Slurm.

The fast tests read the profile the way Snakemake reads it and build the `sbatch` GPU options with the
executor plugin's own functions. The slow test starts a one-node Slurm cluster on this machine
(Debian's slurm-wlm, installed when missing; no munge, no accounting), writes
/etc/slurm/slurm.conf (the plugin runs `srun` inside each job with the SLURM_* variables removed, so
Slurm must find its configuration at the default path), and runs part of the DAG on config/ci.yaml
with `--profile slurm`, conda switched off.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import run_killable  # noqa: E402  (tests/conftest.py)

from hzg import registry

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "slurm" / "config.v8+.yaml"
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "scripts", "src", "envs", "slurm"]
SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
MARKER = "# written by tests/test_slurm.py"


# ------------------------------------------------------------------------------------- the profile


def profile_args() -> dict:
    """The profile as Snakemake turns it into command-line arguments."""
    from snakemake.profiles import ProfileConfigFileParser

    with PROFILE.open() as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def train_resources(extra: tuple[str, ...] = ()) -> dict[str, dict]:
    """The profile's set-resources of rule train, evaluated for every model the workflow knows."""
    from snakemake.cli import parse_set_resources

    entries = [e for e in profile_args()["set-resources"] if e.startswith("train:")] + list(extra)
    resources = parse_set_resources(entries)["train"]
    values = {}
    for model in workflow_models():
        values[model] = {
            name: res.evaluate(
                wildcards=SimpleNamespace(model=model, loss="bce", trial="0"),
                input=[],
                attempt=1,
                threads=1,
                rulename="train",
                async_run=None,
            ).value
            for name, res in resources.items()
        }
    return values


def workflow_models() -> list[str]:
    return list(registry.MODELS)  # the rules' wildcard constraint (tests/test_registry.py)


def tree_models() -> set[str]:
    return set(registry.TREE_MODELS)


class _Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch_gpu_options(resources: dict) -> str:
    """The GPU part of the plugin's sbatch call for a job with these resources (plugin code)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=1)
    params = {
        "run_uuid": "u",
        "slurm_logfile": "l",
        "comment_str": "c",
        "account": "",
        "partition": "",
        "workdir": None,
    }
    return get_submit_command(job, params) + set_gres_string(job)


def test_profile_is_found_by_name_and_submits_to_slurm(monkeypatch):
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    profile_dir, profile_file = get_profile_dir("slurm")
    assert (profile_dir.resolve(), profile_file.resolve()) == (PROFILE.parent, PROFILE)
    args = profile_args()
    assert args["executor"] == "slurm"
    assert args["software-deployment-method"] == "conda"
    assert int(args["jobs"]) > 0 and int(args["latency-wait"]) > 0 and int(args["retries"]) >= 0
    defaults = dict(e.split("=", 1) for e in args["default-resources"])
    assert int(defaults["runtime"]) > 0 and int(defaults["mem_mb"]) > 0
    # partition and account are the user's (commented out in the profile, documented in the README)
    assert "slurm_partition" not in defaults and "slurm_account" not in defaults
    # GPUs through the plugin's gpu/gpu_model resources, not a raw sbatch string
    assert not any("slurm_extra" in e for e in args["set-resources"] + args["default-resources"])


def test_profile_asks_a_gpu_for_neural_training_and_none_for_trees():
    trees = tree_models()
    assert trees == {"xgboost", "bdt"}
    values = train_resources()
    for model, res in values.items():
        options = sbatch_gpu_options(res)
        if model in trees:
            assert res["gpu"] == 0 and "--gpus" not in options and "gres" not in options, (model, options)
            assert "--ntasks=1" in options
        else:
            assert res["gpu"] == 1 and options.endswith(" --gpus=1"), (model, options)


def test_gpu_model_example_of_the_profile_names_the_model_for_neural_jobs_only():
    """The commented `gpu_model` line is what a user uncomments; with it trees still get no GPU."""
    example = re.search(r"^\s*#\s*gpu_model:\s*(.+)$", PROFILE.read_text(), re.M).group(1)
    expression = yaml.safe_load(example)
    values = train_resources((f"train:gpu_model={expression}",))
    for model, res in values.items():
        options = sbatch_gpu_options(res)
        if model in tree_models():
            assert "--gpus" not in options, (model, options)
        else:
            assert options.endswith(" --gpus=a100:1"), (model, options)
    # the hazard this guards against: a model name with gpu=0 is a request Slurm never satisfies
    assert sbatch_gpu_options({"gpu": 0, "gpu_model": "a100"}).endswith("--gpus=a100:0")


def test_rule_train_gpu_resource_agrees_with_the_profile():
    """workflow/rules/train.smk: gpu=0 for trees (the plugin then adds no GPU option), 1 otherwise."""
    train = (REPO / "workflow/rules/train.smk").read_text()
    common = (REPO / "workflow/rules/common.smk").read_text()
    assert (
        re.search(r"gpu=get_train_gpus", train)
        and "return 0 if wildcards.model in TREE_MODELS else 1" in common
    )
    assert sbatch_gpu_options({"gpu": 0}).count("--gpus") == 0


# ------------------------------------------------------------------------- a one-node Slurm cluster


def _run(cmd: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _ensure_slurm_installed() -> None:
    if all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "srun", "squeue")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "Slurm is not installed and cannot be (needs root and apt-get: apt-get install slurm-wlm)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slurm-wlm"]):
        proc = _run(cmd, timeout=900, env=env)
        if proc.returncode != 0:
            pytest.skip(
                f"cannot install slurm-wlm ({' '.join(cmd)}: rc {proc.returncode}): {proc.stderr[-500:]}"
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _slurm_conf(base: Path) -> str:
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    real_memory = mem_mb - max(1024, mem_mb // 10)
    return f"""{MARKER}: a one-node cluster for the test, removed after it
ClusterName=hzgtest
GresTypes=gpu
SlurmctldHost=localhost
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
MinJobAge=600
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={min(2, os.cpu_count() or 1)} RealMemory={real_memory} Gres=gpu:1 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""  # noqa: E501  (one slurm.conf line)


#: One fake GPU (no device behind it): Slurm schedules `--gpus=1` on it; torch sees no CUDA and trains on
#: the CPU.
GRES = f"{MARKER}: a fake GPU for the test\nAutoDetect=off\nNodeName=localhost Name=gpu File=/dev/null\n"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory, request):
    """slurmctld + slurmd on localhost; every daemon and job it started is stopped afterwards."""
    if sys.platform != "linux":
        pytest.skip("the one-node Slurm cluster needs Linux")
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld/slurmd and writing /etc/slurm/slurm.conf needs root")
    _ensure_slurm_installed()
    for conf in (SLURM_CONF, GRES_CONF):
        if conf.exists() and MARKER not in conf.read_text():
            pytest.skip(f"{conf} exists and is not this test's: not touching a real Slurm installation")
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(_slurm_conf(base))
    GRES_CONF.write_text(GRES)
    daemons: list[subprocess.Popen] = []

    def finish():
        # cancel the jobs of this cluster (by id), then the daemons (by PID), then the configuration
        if daemons and daemons[0].poll() is None:
            ids = _run(["squeue", "-h", "-o", "%i", "-t", "PENDING,RUNNING"]).stdout.split()
            if ids:
                _run(["scancel", *ids])
        for proc in reversed(daemons):
            _stop(proc)
        for conf in (SLURM_CONF, GRES_CONF):
            if conf.exists() and MARKER in conf.read_text():
                conf.unlink()

    request.addfinalizer(finish)
    for name, cmd in (
        ("slurmctld", ["slurmctld", "-D", "-i"]),
        ("slurmd", ["slurmd", "-D", "-N", "localhost"]),
    ):
        out = (base / f"{name}.out").open("w")
        daemons.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in daemons):
            break
        state = _run(["sinfo", "-h", "-n", "localhost", "-o", "%T"]).stdout.strip()
        if state == "idle":
            return SimpleNamespace(base=base, daemons=daemons)
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(base.glob("*.out")))
    pytest.fail(f"Slurm did not come up (node state {state!r}):\n{logs}")


def _squeue_all() -> dict[str, dict]:
    """Every job slurmctld knows (MinJobAge keeps finished ones): id -> state, comment, limits."""
    fields = ["id", "state", "comment", "time_limit", "min_memory"]
    out = _run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k|%l|%m"]).stdout
    return {row[0]: dict(zip(fields, row)) for row in (line.split("|") for line in out.splitlines() if line)}


def _workflow_copy(work: Path) -> tuple[Path, dict[str, str]]:
    """The workflow's files copied to `work`, and this environment without the SLURM_ variables of a job."""
    work.mkdir()
    for item in WORKFLOW_FILES:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    return work, {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}


@pytest.mark.slow
def test_part_of_the_dag_runs_through_slurm_with_the_shipped_profile(slurm_cluster, tmp_path):
    work, env = _workflow_copy(tmp_path / "wf")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "results/features/signal.parquet",
        "--cores",
        "2",
        "--profile",
        "slurm",
        "--configfile",
        "config/ci.yaml",
        # conda off: the value replaces the profile's `conda`; no rule has an `envmodules:` directive, so
        # every job runs in this Python environment
        "--software-deployment-method",
        "env-modules",
        # no accounting database here: job states from squeue (slurmctld keeps finished jobs for
        # MinJobAge=600 s), the first status check after 1 s, and no account to guess
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-no-account",
        "--slurm-keep-successful-logs",
        # the test node may have less memory than the rules ask for on a real cluster (this replaces the
        # profile's set-resources, which only concerns rule train, not part of this run)
        "--set-resources",
        "generate:mem_mb=1000",
        "skim:mem_mb=1000",
        "features:mem_mb=2000",
    ]
    returncode, output = run_killable(cmd, work, env, timeout=300)
    assert returncode == 0, output[-6000:]
    assert "Using profile slurm" in output
    assert (work / "results/features/signal.parquet").stat().st_size > 0

    submitted = dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", output))
    jobs = _squeue_all()
    expected = {
        "rule_generate_wildcards_signal_0",
        "rule_generate_wildcards_signal_1",
        "rule_skim_wildcards_signal_0",
        "rule_skim_wildcards_signal_1",
        "rule_resolution_map",
        "rule_features_wildcards_signal",
    }
    assert {jobs[i]["comment"] for i in submitted} == expected, (submitted, jobs)
    for slurm_id, log in submitted.items():
        assert jobs[slurm_id]["state"] == "COMPLETED", jobs[slurm_id]
        log = Path(log)
        assert log.is_relative_to(work / ".snakemake/slurm_logs") and log.name == f"{slurm_id}.log"
        assert "Finished jobid" in log.read_text(), log.read_text()[-3000:]
    by_rule = {jobs[i]["comment"]: jobs[i] for i in submitted}
    # the profile's default-resources reach sbatch (resolution_map sets none of its own) ...
    assert by_rule["rule_resolution_map"]["time_limit"] == "1:00:00"
    assert by_rule["rule_resolution_map"]["min_memory"] == "2000M"
    # ... and a rule's own resources win over them (generate: runtime 30 + n_events // 20000 min)
    assert by_rule["rule_generate_wildcards_signal_0"]["time_limit"] == "30:00"
    assert by_rule["rule_generate_wildcards_signal_0"]["min_memory"] == "1000M"


@pytest.mark.slow
def test_a_training_job_gets_the_profiles_gpu_on_slurm_and_the_report_builds(slurm_cluster, ci_run, tmp_path):
    """One neural training job (and the skims and features it needs) through the shipped profile, with the
    profile's own `gpu` resource of rule train (the node has one fake GPU: sbatch --gpus=1 is scheduled on
    it); then the report. The n-tuples are the ci run's (their generation on Slurm is the test above's; the
    Drell-Yan FSR chunks alone took 100 s here). Conda stays off (no conda and no network here: every job
    runs in this Python environment)."""
    work, env = _workflow_copy(tmp_path / "wf")
    shutil.copytree(ci_run / "results/mc", work / "results/mc")  # copy2: the n-tuples keep their times
    target = "results/models/etn_bce/trial0/checkpoint.pt"
    profile_train = [e for e in profile_args()["set-resources"] if e.startswith("train:")]
    assert any(e.startswith("train:gpu=") for e in profile_train), profile_train
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        target,
        "results/plots/features/mllg.png",
        "--cores",
        "2",
        "--profile",
        "slurm",
        "--configfile",
        "config/ci.yaml",
        "--software-deployment-method",
        "env-modules",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-no-account",
        "--slurm-keep-successful-logs",
        # memory for this small node; the profile's train entries (its gpu expression) are kept as they are
        "--set-resources",
        *profile_train,
        "train:mem_mb=2000",
        "generate:mem_mb=1000",
        "skim:mem_mb=1000",
        "features:mem_mb=2000",
        "skim_variation:mem_mb=1000",
        "features_variation:mem_mb=2000",
    ]
    returncode, output = run_killable(cmd, work, env, timeout=1500)
    assert returncode == 0, output[-6000:]
    submitted = dict(re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", output))
    jobs = _squeue_all()
    assert not [i for i in submitted if jobs[i]["comment"].startswith("rule_generate")], (
        "n-tuples regenerated"
    )
    train = [i for i in submitted if jobs[i]["comment"] == "rule_train_wildcards_etn_bce_0"]
    assert len(train) == 1, {i: jobs[i]["comment"] for i in submitted}
    assert jobs[train[0]]["state"] == "COMPLETED", jobs[train[0]]
    details = _run(["scontrol", "show", "job", train[0]]).stdout
    assert re.search(r"TresPerJob=(gres:)?gpu:1", details), details  # the profile's gpu=1, as Slurm got it
    for other in (i for i in submitted if i not in train):  # the data side asks for no GPU
        assert not re.search(r"TresPerJob=\S*gpu", _run(["scontrol", "show", "job", other]).stdout), jobs[
            other
        ]
    assert (work / target).exists() and "best epoch" in (work / "logs/train/etn_bce/trial0.log").read_text()
    report = work / "results/report.html"
    rep = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            target,
            "results/plots/features/mllg.png",
            "--report",
            "results/report.html",
            "--configfile",
            "config/ci.yaml",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    text = report.read_text()
    assert "results/plots/features/mllg.png" in text and "train" in text
