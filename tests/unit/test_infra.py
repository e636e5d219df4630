"""Deployable infrastructure: Kubernetes manifests pass the Kubernetes schemas; the serving
configuration is what TF Serving parses; the Dockerfiles install from the repo's lock."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format

from testkit.sandbox import allowed_env

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.33.0"


def manifests():
    for path in sorted((REPO / "infra" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield pytest.param(doc, id=f"{path.name}:{doc['kind']}")


@pytest.mark.parametrize("doc", manifests())
def test_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_manifest():
    doc = next(d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())
               if d["kind"] == "Deployment")
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8500"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_serving_deployment_probes_ports_and_model_volume():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    # Metadata is served only from a loaded version; the status page answers 200 while one is LOADING.
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/bloodcell/metadata"
    assert "livenessProbe" in container
    service = next(d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())
                   if d["kind"] == "Service" and d["metadata"]["name"] == "bloodcell-serving")
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "bloodcell-serving"
    # The models come from the Pusher's bucket (models.config), read as the Deployment's service account.
    assert docs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert "PersistentVolumeClaim" not in docs
    # The ConfigMap carries exactly the files in serving/config/.
    for name, text in docs["ConfigMap"]["data"].items():
        assert parse_serving_config(name, text) == parse_serving_config(name, (REPO / "serving" / "config" / name).read_text())


def parse_serving_config(name: str, text: str):
    """models.config through TF Serving's own proto; the batching and monitoring protos are not in the
    tensorflow-serving-api package, so those two are compared as whitespace-free text."""
    if name != "models.config":
        return "".join(line.split("#")[0] for line in text.splitlines()).replace(" ", "")
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_model_config_parses_as_tf_serving_proto():
    models = parse_serving_config("models.config", (REPO / "serving" / "config" / "models.config").read_text())
    config = models.model_config_list.config[0]
    from pipeline.config import load_config

    # TF Serving reads the very folder the Pusher writes to on the cluster.
    assert (config.name, config.base_path) == ("bloodcell", load_config().kubeflow.serving_base)
    assert config.model_version_policy.latest.num_versions == 2


@pytest.mark.parametrize("lock", ["pipeline.lock", "converter.lock"])
def test_pipeline_image_installs_both_environments_from_the_locks(lock):
    text = (REPO / "infra" / "docker" / "pipeline.Dockerfile").read_text()
    assert f"locks/{lock}" in text and "--require-hashes" in text
    assert (REPO / "locks" / lock).exists()
    assert "BLOODCELL_TFJS_CONVERTER=/opt/converter-venv/bin/tensorflowjs_converter" in text


def test_pipeline_image_carries_the_product_packages_and_no_sample_data():
    """Every package the spec names by import path is in the image; warm-up images come with serving."""
    text = (REPO / "infra" / "docker" / "pipeline.Dockerfile").read_text()
    copied = [line.split()[1] for line in text.splitlines() if line.startswith("COPY ")]
    for package in ("models/", "components/", "pipeline/", "serving/"):
        assert package in copied
    assert not any(path.startswith("data") for path in copied)
    assert len(list((REPO / "serving" / "warmup_images").glob("*.jpeg"))) == 4


def test_serving_thread_pools_follow_the_cpu_limit():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    cpus = int(container["resources"]["limits"]["cpu"])
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    assert int(flags["tensorflow_intra_op_parallelism"]) == cpus
    assert int(flags["tensorflow_inter_op_parallelism"]) == cpus
    batching = (REPO / "serving" / "config" / "batching.config").read_text()
    assert f"num_batch_threads {{ value: {cpus} }}" in batching


def pod_specs():
    """Every pod template in the Kubernetes manifests, with the file it comes from."""
    for path in sorted((REPO / "infra" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            template = (doc or {}).get("spec", {}).get("template")
            if template:
                yield path.name, template["spec"]


def test_every_container_runs_unprivileged_on_a_read_only_root():
    specs = list(pod_specs())
    assert specs
    for name, spec in specs:
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True and pod.get("runAsUser", 0) != 0, name
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in spec.get("initContainers", []) + spec["containers"]:
            ctx = container.get("securityContext", {})
            assert ctx.get("runAsNonRoot") is True, (name, container["name"])
            assert ctx.get("readOnlyRootFilesystem") is True, (name, container["name"])
            assert ctx.get("allowPrivilegeEscalation") is False, (name, container["name"])
            assert ctx.get("capabilities", {}).get("drop") == ["ALL"], (name, container["name"])


def test_the_installer_is_pinned_by_hash():
    """uv, which installs everything else from hashed locks, is itself installed by hash."""
    lock = (REPO / "infra" / "env" / "tools.lock").read_text()
    assert re.search(r"^uv==[\d.]+ \\$", lock, re.M) and len(re.findall(r"--hash=sha256:[0-9a-f]{64}", lock)) >= 1
    for path in (REPO / "infra" / "env" / "setup.sh", REPO / "infra" / "docker" / "pipeline.Dockerfile"):
        installs = [line for line in path.read_text().splitlines()
                    if re.search(r"pip\S* install", line) and "tools" in line]
        assert installs and all("--require-hashes" in line for line in installs), path


def test_the_pipeline_image_runs_as_a_user():
    text = (REPO / "infra" / "docker" / "pipeline.Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")


def _scheduled_run(env: dict[str, str], command: str) -> dict[str, str]:
    """What a scheduled run is given: its folders, and the sandbox's binds."""
    import shlex

    words = shlex.split(command)
    options = words[words.index("pipeline.local_runner") + 1:]
    return {"data": options[options.index("--data-dir") + 1], "output": options[options.index("--output-dir") + 1],
            "ro": env.get("BLOODCELL_BIND", ""), "rw": env.get("BLOODCELL_BIND_RW", ""),
            "cache": env.get("BLOODCELL_CACHE", ""), "if_changed": str("--if-changed" in options)}


def _inside(path: str, binds: str) -> bool:
    return any(b and (path == b or path.startswith(b.rstrip("/") + "/")) for b in binds.split(":"))


def test_the_scheduled_run_sees_its_folders_inside_the_sandbox():
    # On a host older than Debian 13, run.sh's sandbox sees only the checkout and its parent: the data
    # folder must be bound, the outputs' folder bound read-write, and systemd must make both of its own.
    import shlex

    unit = (REPO / "infra" / "systemd" / "bloodcell-pipeline.service").read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    env = dict(item.split("=", 1) for item in shlex.split(keys["Environment"]))
    run = _scheduled_run(env, keys["ExecStart"])
    assert _inside(run["data"], run["ro"]) and _inside(run["output"], run["rw"]), run
    assert run["rw"] == f"/var/lib/{keys['StateDirectory']}" and run["cache"] == f"/var/cache/{keys['CacheDirectory']}"
    assert run["if_changed"] == "True"
    # The runner itself, not make: make turns every failure into exit 2, so the journal could not tell a
    # failed step or an unblessed model (1) from a bad configuration or a run in progress (2).
    command = shlex.split(keys["ExecStart"])
    assert command[:4] == [f"{keys['WorkingDirectory']}/infra/env/run.sh", "python", "-m", "pipeline.local_runner"], command
    # The documented cron line is the same run.
    cron = re.search(r"^0 3 \* \* 1 cd \S+ && (.*)$", (REPO / "docs" / "labs.md").read_text(), re.M).group(1)
    cron_env = dict(w.split("=", 1) for w in shlex.split(cron) if re.match(r"^BLOODCELL_\w+=", w))
    assert _scheduled_run(cron_env, cron) == run


def test_a_scheduled_run_blesses_only_a_useful_model():
    """config.yaml's bar (0: the bundled sample cannot reach more) is the bar of any run that does not
    set one: a scheduled run's first model in its own output folder has no blessed model to be compared
    with, and was blessed and published at any accuracy."""
    import shlex

    from pipeline import local_runner
    from pipeline.config import load_config

    unit = (REPO / "infra" / "systemd" / "bloodcell-pipeline.service").read_text()
    commands = [dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))["ExecStart"],
                re.search(r"^0 3 \* \* 1 cd \S+ && (.*)$", (REPO / "docs" / "labs.md").read_text(), re.M).group(1)]
    for command in commands:
        words = shlex.split(command)
        args = local_runner.parse_args(words[words.index("pipeline.local_runner") + 1:])
        config = load_config(args.config, local_runner.overrides_from(args))
        assert config.evaluation.min_accuracy >= 0.8, command



def test_warmup_requests_fit_the_servers_batches(tmp_path):
    # TF Serving runs warm-up through its batching session: a request over max_batch_size fails the
    # version's load, where ServingCheck (no batching) would have passed it.
    from serving import warmup

    batching = (REPO / "serving" / "config" / "batching.config").read_text()
    assert f"max_batch_size {{ value: {warmup.MAX_BATCH_SIZE} }}" in batching
    images = warmup.packaged_warmup_images() * 9  # 36 images
    warmup.write_warmup_requests(str(tmp_path), images, "bloodcell")
    sizes = [len(log.predict_log.request.inputs["images"].string_val) for log in warmup.read_warmup_requests(str(tmp_path))]
    assert max(sizes) <= warmup.MAX_BATCH_SIZE and sum(s for s in sizes if s > 1) == 36 and sizes.count(1) == 36


READS_ENV = re.compile(r"""os\.environ(?:\.get)?[\[(]["']([A-Z][A-Z0-9_]*)["']|os\.getenv\(["']([A-Z][A-Z0-9_]*)["']"""
                       r"|(?:import\.meta\.env|\benv)\.(VITE_[A-Z0-9_]*)|process\.env\.([A-Z][A-Z0-9_]*)")


def test_every_variable_the_product_reads_passes_the_sandbox():
    """infra/env/run.sh passes only allowlisted variables into its sandbox. One the product reads, and
    the docs tell a user to set, must be on the list: dropped, the Kubeflow client had run without
    $KFP_TOKEN and the dev page had refused its model (VITE_ALLOWED_MODEL_ORIGINS)."""
    allowed = allowed_env()
    read = set()
    for folder in ("pipeline", "serving", "components", "models", "benchmarks", "web/src", "web/scripts"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".ts", ".js", ".mjs") and "node_modules" not in path.parts:
                read |= {name for match in READS_ENV.findall(path.read_text()) for name in match if name}
    read |= {name for match in READS_ENV.findall((REPO / "web" / "vite.config.ts").read_text()) for name in match if name}
    assert {"KFP_TOKEN", "KAGGLE_KEY", "VITE_MODEL_URL", "VITE_ALLOWED_MODEL_ORIGINS"} <= read, read
    dropped = {name for name in read if not any(fnmatch.fnmatchcase(name, p) for p in allowed)}
    # A folder on the host: the sandbox hides the host's home on purpose; credentials come as variables.
    assert dropped == {"KAGGLE_CONFIG_DIR"}


def test_the_pipeline_images_user_gets_uid_1000_on_an_ubuntu_base_that_holds_one():
    # ubuntu:24.04 (and images built on it) ship a user 'ubuntu' with uid 1000: useradd --uid 1000 fails.
    text = (REPO / "infra" / "docker" / "pipeline.Dockerfile").read_text()
    base = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
    release = re.search(r"ubuntu(\d+)\.(\d+)", base)
    useradd = next(line for line in text.replace("\\\n", " ").splitlines() if line.startswith("RUN") and "useradd" in line)
    assert "--uid 1000" in useradd and "USER 1000:1000" in text
    if release and tuple(map(int, release.groups())) >= (23, 4):
        assert useradd.index("userdel --remove ubuntu") < useradd.index("useradd --uid 1000")


def test_the_autoscaler_alone_sets_the_replica_count_and_a_slow_first_load_is_not_killed():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())}
    # A `replicas` in the Deployment would reset the autoscaler's count on every `kubectl apply`.
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert "replicas" not in docs["Deployment"]["spec"]
    # TF Serving opens its ports once the models have loaded: the liveness probe waits for that.
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    startup = container["startupProbe"]
    assert startup["tcpSocket"]["port"] == "grpc" and startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_serving_pods_leave_and_take_a_new_config_without_dropping_requests():
    docs = {d["kind"]: d for d in yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text())}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # A config polled by every pod reached them all at once, past the rolling update.
    assert not any(a.startswith("--model_config_file_poll_wait_seconds") for a in container["args"])
    # Leaving: answering on while the Service stops sending, within the grace period.
    wait = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert 5 <= wait and pod["terminationGracePeriodSeconds"] >= wait + 10
    budget = docs["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert budget["maxUnavailable"] == 1
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    # A busy pod is not unready at the first slow answer; a hung server is not alive.
    assert container["readinessProbe"]["timeoutSeconds"] >= 3
    assert "httpGet" in container["livenessProbe"]


def test_the_scheduled_run_waits_for_the_network_and_its_data_folder():
    # Persistent=true fires a missed run at boot: the environment's first build needs the network, and a
    # data folder on a share must be mounted before the run reads it.
    import shlex

    unit = (REPO / "infra" / "systemd" / "bloodcell-pipeline.service").read_text()
    keys = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert "network-online.target" in keys["Wants"].split() and "network-online.target" in keys["After"].split()
    env = dict(item.split("=", 1) for item in shlex.split(keys["Environment"]))
    assert _scheduled_run(env, keys["ExecStart"])["data"] in keys["RequiresMountsFor"].split()


def test_a_path_the_sandbox_will_not_show_is_named_before_the_command_runs(tmp_path):
    """A lab's cells in ~/Downloads or /tmp, outside the checkout and BLOODCELL_BIND, had read as "folder
    not found" inside run.sh's sandbox, with no hint why."""
    import subprocess

    rootfs, checkout, hidden, bound, other = (tmp_path / n for n in ("rootfs", "checkout", "hidden cells", "bound", "other"))
    # A mount point an earlier run made in the tree for its BLOODCELL_BIND shows an empty folder, not the host's.
    for folder in (rootfs / "usr" / "bin", rootfs / str(other).lstrip("/"), checkout / "data", hidden, bound, other):
        folder.mkdir(parents=True)
    (tmp_path / "link").symlink_to(checkout)
    args = ["python", "-m", "pipeline.local_runner", "--data-dir", str(checkout / "data"),
            "--lab-source", f"mylab={hidden}", f"--other={bound}", "/usr/bin", str(tmp_path / "absent"),
            f"labs.sources.x={hidden}/", f"--lab-source=y={other}", str(tmp_path / "link" / "data")]
    script = REPO / "infra" / "env" / "hidden_paths.sh"
    out = subprocess.run(["bash", "-c", f'source "{script}"; hidden_paths "$@"', "bash", str(rootfs),
                          f"{tmp_path / 'link'}:{bound}", *args], capture_output=True, text=True, cwd=checkout, check=True)
    assert out.stdout.splitlines() == sorted([str(hidden), str(other)]), out
    run_sh = (REPO / "infra" / "env" / "run.sh").read_text()
    assert 'hidden_paths "$env_dir/rootfs"' in run_sh and "BLOODCELL_BIND=" in run_sh


def test_the_cdn_edge_holds_more_than_a_few_hundred_visitors(tmp_path):
    """One worker of 256 connections, idle ones kept 75 s: a few hundred browsers filled it, and nginx
    dropped connections."""
    from infra.nginx.render import render

    text = render(str(tmp_path / "origin"), "127.0.0.1:8080", "http://127.0.0.1:5173", str(tmp_path / "run"))
    assert re.search(r"^worker_processes auto;", text, re.M)
    connections = int(re.search(r"worker_connections (\d+);", text).group(1))
    assert connections >= 1024
    # Each connection holds its socket and the file it sends: the default 1024 files would run out first.
    assert int(re.search(r"worker_rlimit_nofile (\d+);", text).group(1)) > 2 * connections
    assert int(re.search(r"keepalive_timeout (\d+)s;", text).group(1)) <= 20


def test_grpc_calls_spread_over_the_pods_the_autoscaler_adds():
    """One gRPC connection per client through a ClusterIP Service put all its calls on one pod."""
    docs = list(yaml.safe_load_all((REPO / "infra" / "k8s" / "serving.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1
    assert headless[0]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in headless[0]["spec"]["ports"]] == [8500]
    # Connections are renewed, so a client resolves the pods again and finds new ones.
    pod = deployment["spec"]["template"]["spec"]
    (arguments,) = [a.split("=", 1)[1] for a in pod["containers"][0]["args"] if a.startswith("--grpc_channel_arguments=")]
    grpc_args = dict(item.split("=") for item in arguments.split(","))
    # ... and a leaving pod has sent its clients away before it stops, their calls finished in its grace.
    age, grace = int(grpc_args["grpc.max_connection_age_ms"]), int(grpc_args["grpc.max_connection_age_grace_ms"])
    wait = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert age < wait * 1000 and age + grace <= pod["terminationGracePeriodSeconds"] * 1000


def test_a_failed_web_install_does_not_stop_the_command(tmp_path):
    """run.sh ran `npm ci` under `set -e` whenever web/package-lock.json was newer than the install: a
    pull that touched it, on a lab host without the npm registry, failed every scheduled pipeline run
    (which uses no node) before Python started."""
    import os
    import subprocess

    (tmp_path / "web" / "node_modules").mkdir(parents=True)
    (tmp_path / "web" / "node_modules" / ".package-lock.json").write_text("{}")
    (tmp_path / "web" / "package-lock.json").write_text("{}")
    os.utime(tmp_path / "web" / "node_modules" / ".package-lock.json", (0, 0))  # older than the lock
    script = REPO / "infra" / "env" / "web_deps.sh"

    def install(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", f'set -euo pipefail; repo="$1"; source "{script}"; '
                               f'install_web_deps {command}; echo went-on', "bash", str(tmp_path)],
                              capture_output=True, text=True)

    failed = install("false")
    assert failed.returncode == 0 and failed.stdout.strip() == "went-on", failed
    assert failed.stderr.startswith("run.sh: the web client's packages") and failed.stderr.count("\n") == 1
    ran = install("echo installing")  # npm's output goes to stderr, the command's stdout stays its own
    assert ran.stdout.strip() == "went-on" and "installing" in ran.stderr
    os.utime(tmp_path / "web" / "node_modules" / ".package-lock.json")  # now newer: nothing to install
    assert install("false").stderr == ""
    assert "install_web_deps" in (REPO / "infra" / "env" / "run.sh").read_text()


@pytest.mark.parametrize("origin", ["http://localhost:5173/", "localhost:5173", "http://a.org/page", "http://a.org, http://b.org",
                                    "https://Lab.Example.org", "https://lab.example.org:443", "http://lab:80",
                                    "http://lab:99999", "http://lab.example.org.", "http://lab:08080",
                                    "http://[0:0::1]:8080"])
def test_an_allowed_origin_browsers_never_send_is_refused(tmp_path, origin):
    """Browsers compare Access-Control-Allow-Origin exactly with their Origin (scheme://host[:port]): a
    trailing slash pasted from the address bar rendered, and every page then read 'Offline'."""
    from infra.nginx.render import render

    with pytest.raises(ValueError, match="--allowed-origin"):
        render(str(tmp_path / "origin"), "127.0.0.1:8080", origin, str(tmp_path / "run"))
    for good in ("https://lab.example.org", "http://127.0.0.1:5173", "http://[::1]:8080", "*"):
        render(str(tmp_path / "origin"), "127.0.0.1:8080", good, str(tmp_path / "run"))


def test_an_environment_that_cannot_be_built_exits_2(tmp_path):
    """run.sh left under `set -e` with setup's own status (1): a timer's first run at boot with the network
    down read as "a step failed or the model was not blessed", the runner's 1, not its 2 (before any step)."""
    import shutil
    import subprocess

    env = tmp_path / "infra" / "env"
    env.mkdir(parents=True)
    shutil.copy(REPO / "infra" / "env" / "run.sh", env / "run.sh")
    (env / "setup.sh").write_text("#!/usr/bin/env bash\necho 'setup: no network' >&2\nexit 1\n")
    (env / "setup.sh").chmod(0o755)
    done = subprocess.run(["bash", str(env / "run.sh"), "true"], capture_output=True, text=True)
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines()[-1].startswith("run.sh: the environment could not be built"), done.stderr
