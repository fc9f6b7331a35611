import os

from lipbench.workflow.rules import pnp_args


# every file of the job's folder is an output: Snakemake removes them together when the job fails
rule pnp:
    input:
        f"{OUT}/models/{{denoiser}}/model.pt",
    output:
        final=f"{OUT}/pnp/{{denoiser}}/{{method}}/final.csv",
        records=f"{OUT}/pnp/{{denoiser}}/{{method}}/records.csv",
        iterates=f"{OUT}/pnp/{{denoiser}}/{{method}}/final.pt",
        settings=f"{OUT}/pnp/{{denoiser}}/{{method}}/settings.json",
        images=directory(f"{OUT}/pnp/{{denoiser}}/{{method}}/images"),
    log:
        f"{OUT}/logs/pnp/{{denoiser}}_{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/pnp/{{denoiser}}_{{method}}.tsv"
    params:
        folder=lambda wildcards, output: os.path.dirname(output.final),
        equivariance=lambda wildcards: METHODS[wildcards.method],
        args=pnp_args(config),
        shared=SHARED,
        code=command_code_hash("pnp"),
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench pnp --checkpoint {input} --out {params.folder} --equivariance {params.equivariance} {params.args}"
        " {params.shared} > {log} 2>&1"


use rule pnp as pnp_long with:
    priority: 1
    output:
        final=f"{OUT}/pnp-long/{{denoiser}}/{{method}}/final.csv",
        records=f"{OUT}/pnp-long/{{denoiser}}/{{method}}/records.csv",
        iterates=f"{OUT}/pnp-long/{{denoiser}}/{{method}}/final.pt",
        settings=f"{OUT}/pnp-long/{{denoiser}}/{{method}}/settings.json",
        images=directory(f"{OUT}/pnp-long/{{denoiser}}/{{method}}/images"),
    log:
        f"{OUT}/logs/pnp-long/{{denoiser}}_{{method}}.log",
    benchmark:
        f"{OUT}/benchmarks/pnp-long/{{denoiser}}_{{method}}.tsv"
    params:
        folder=lambda wildcards, output: os.path.dirname(output.final),
        equivariance=lambda wildcards: METHODS[wildcards.method],
        args=pnp_args(config, long=True) if config["pnp"].get("long_runs") else "",
        shared=SHARED,
        code=command_code_hash("pnp"),
