"""`safehaven disclosure check` on tables made elsewhere: it names the cells an attacker can
recover or a primary rule forbids, exits 70, and passes a properly protected table."""

from tests.integration.test_cli import run

UKHSA = """region,age,n
A,0-30,*
A,Over 30,*
A,Total,11
B,0-30,*
B,Over 30,111
B,Total,124
C,0-30,*
C,Over 30,17
C,Total,32
Total,0-30,38
Total,Over 30,129
Total,Total,167
"""


def _write(tmp_path, text, name="table.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_ukhsa_example_fails_naming_every_recovered_cell(tmp_path):
    out = run("disclosure", "check", str(_write(tmp_path, UKHSA)), "--dims", "region,age", "--count", "n")
    assert out.returncode == 70, out.stdout + out.stderr
    assert "region=A, age=Over 30" in out.stdout and "1 to 1" in out.stdout
    assert "4 hidden cell(s)" in out.stderr and "Traceback" not in out.stderr


def test_a_protected_table_passes_and_a_small_published_count_fails(tmp_path):
    rows = ["r,c,n"]
    grid = {("A", "x"): "*", ("A", "y"): "*", ("A", "z"): "30", ("B", "x"): "*", ("B", "y"): "*", ("B", "z"): "60",
            ("C", "x"): "70", ("C", "y"): "80", ("C", "z"): "90"}
    rows += [f"{r},{c},{v}" for (r, c), v in grid.items()]
    rows += ["A,Total,53", "B,Total,150", "C,Total,240", "Total,x,113", "Total,y,150", "Total,z,180", "Total,Total,443"]
    ok = run("disclosure", "check", str(_write(tmp_path, "\n".join(rows) + "\n")), "--dims", "r,c", "--count", "n")
    assert ok.returncode == 0 and "safe" in ok.stdout, ok.stdout + ok.stderr
    rows[rows.index("C,x,70")] = "C,x,5"
    rows[rows.index("C,Total,240")] = "C,Total,175"
    rows[rows.index("Total,x,113")] = "Total,x,48"
    rows[rows.index("Total,Total,443")] = "Total,Total,378"
    bad = run("disclosure", "check", str(_write(tmp_path, "\n".join(rows) + "\n")), "--dims", "r,c", "--count", "n")
    assert bad.returncode == 70 and "r=C, c=x" in bad.stdout and "within 1..7" in bad.stdout


def test_hes_profile_reads_stars_as_one_to_seven_and_wants_multiples_of_five(tmp_path):
    text = "g,n\nA,*\nB,20\nTotal,25\n"
    out = run("disclosure", "check", str(_write(tmp_path, text)), "--dims", "g", "--count", "n",
              "--profile", "nhs-hes-2018")
    assert out.returncode == 0, out.stdout + out.stderr  # A is 1..7 and the total 23..27: not exact
    odd = run("disclosure", "check", str(_write(tmp_path, "g,n\nA,*\nB,21\nTotal,25\n")), "--dims", "g",
              "--count", "n", "--profile", "nhs-hes-2018")
    assert odd.returncode == 70 and "not a multiple of 5" in odd.stdout
    unknown = run("disclosure", "check", str(_write(tmp_path, text)), "--dims", "g", "--count", "n", "--profile", "x")
    assert unknown.returncode == 2 and "unknown rule profile" in unknown.stderr
