# The end of a run: does it reproduce the published reference (results/<name>/tables/results.csv, or
# reference.table)? `lipbench compare` with the config's reference.tolerance overrides writes the
# verdict, which the run prints when it ends; reference.strict makes a difference, a changed config_hash
# or an extra row fail the run (CI).
import shlex

REFERENCE = config["reference"]["table"] or f"results/{config['name']}/tables/results.csv"

if Path(REFERENCE).is_file():

    rule reference:
        input:
            reference=REFERENCE,
            new=f"{OUT}/tables/results.csv",
        output:
            f"{OUT}/reference.md",
        log:
            f"{OUT}/logs/reference.log",
        params:
            tolerance=shlex.join(f"--tolerance={k}={v}" for k, v in config["reference"]["tolerance"].items()),
            fail="--strict" if config["reference"]["strict"] else "--no-fail",
            code=command_code_hash("compare"),
        conda:
            ENV
        shell:
            "lipbench compare {input.reference} {input.new} --report {output} {params.tolerance} {params.fail}"
            " > {log} 2>&1"

else:

    rule reference:
        input:
            f"{OUT}/tables/results.csv",
        output:
            f"{OUT}/reference.md",
        log:
            f"{OUT}/logs/reference.log",
        params:
            reference=REFERENCE,
        shell:
            "echo 'No published reference to compare with ({params.reference} does not exist): "
            "`lipbench publish` makes one (docs/workflow.md).' > {output} 2> {log}"
