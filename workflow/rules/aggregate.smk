import os

from lipbench.workflow.rules import grid_args


rule aggregate:
    input:
        finals=[f"{OUT}/pnp/{denoiser}/{method}/final.csv" for denoiser, method in PNP_RUNS],
        records=[f"{OUT}/pnp/{denoiser}/{method}/records.csv" for denoiser, method in PNP_RUNS],
        lipschitz=expand(f"{OUT}/lipschitz/{{denoiser}}.csv", denoiser=DENOISERS),
        denoise=expand(f"{OUT}/denoise/{{denoiser}}.csv", denoiser=DENOISERS),
        tuning=[f"{OUT}/models/tv/tuning.csv"] if config.get("tv") else [],
        long_records=[f"{OUT}/pnp-long/{denoiser}/{method}/records.csv" for denoiser, method in LONG_RUNS],
    output:
        [
            report(f"{OUT}/tables/{table}.csv", caption="../report/table.rst", category="Tables", labels={"table": table})
            for table in TABLES
        ],
        expand(f"{OUT}/tables/{{table}}.{{ext}}", table=TABLES, ext=["md", "tex"]),
        f"{OUT}/tables/results.csv",
    log:
        f"{OUT}/logs/aggregate.log",
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        tuning=lambda wildcards, input: f"--tuning {input.tuning}" if input.tuning else "",
        long=lambda wildcards, input: f"--long-records {input.long_records}" if input.long_records else "",
        name=config["name"],
        device=config["device"],
        config_hash=CONFIG_HASH,
        code=command_code_hash("aggregate"),
    conda:
        ENV
    shell:
        "lipbench aggregate --finals {input.finals} --records {input.records} --lipschitz {input.lipschitz}"
        " --denoise {input.denoise} {params.tuning} {params.long}"
        " --out {params.folder} --config-name {params.name} --device {params.device}"
        " --config-hash {params.config_hash} > {log} 2>&1"


# `snakemake calibrate`: train and measure every λ (no PnP), then say whether the grid spans
# "no effect" to "max ‖∂Q‖² <= 1" and what to change (docs/configuration.md, "Calibrating the λ grid")
rule calibrate:
    input:
        lipschitz=expand(f"{OUT}/lipschitz/lam{{lam}}.csv", lam=LAMBDAS),
    output:
        report(f"{OUT}/tables/grid.csv", caption="../report/grid.rst", category="Tables", labels={"table": "grid"}),
        f"{OUT}/tables/grid.md",
        f"{OUT}/tables/grid.tex",
    log:
        f"{OUT}/logs/calibrate.log",
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=grid_args(config),
        code=command_code_hash("grid"),
    conda:
        ENV
    shell:
        "lipbench grid --lipschitz {input.lipschitz} --out {params.folder} {params.args} > {log} 2>&1"
