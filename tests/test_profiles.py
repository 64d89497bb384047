import subprocess
import sys

import pytest
import yaml

from kslottery import profiles
from kslottery.errors import KSLError


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_profiles_parse_and_match_notebook_parameters(name):
    import papermill as pm

    prof = profiles.load_profile(name)
    for nb in prof["notebooks"]:
        declared = pm.inspect_notebook(str(profiles.repo_root() / "notebooks" / f"{nb}.ipynb"))
        assert set(profiles.notebook_parameters(prof, nb, name)) <= set(declared), nb


def test_unknown_profile_and_notebook(tmp_path):
    with pytest.raises(KSLError, match="unknown profile 'huge'; use one of default, paper, smoke"):
        profiles.load_profile("huge")
    with pytest.raises(KSLError, match="has no notebook"):
        profiles.run_profile("smoke", only=["nope"])


def test_unknown_parameter_is_refused_before_running(tmp_path):
    root = tmp_path
    (root / "profiles").mkdir()
    (root / "notebooks").mkdir()
    src = profiles.repo_root() / "notebooks" / "baseline_and_prompts.ipynb"
    (root / "notebooks" / src.name).write_bytes(src.read_bytes())
    (root / "profiles" / "bad.yaml").write_text(yaml.safe_dump(
        {"common": {"model": "tiny:smollm2-135m"}, "notebooks": {"baseline_and_prompts": {"temperature": 0.7}}}))
    with pytest.raises(KSLError, match=r"passes \['temperature'\] to baseline_and_prompts"):
        profiles.run_profile("bad", root=root)
    assert not list((root / "book" / "results" / "bad").glob("*.ipynb"))


def test_run_help():
    r = subprocess.run([sys.executable, "-m", "kslottery.cli", "run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--profile" in r.stdout
