import os

from lipbench.workflow.rules import certified_denoisers, certify_args, denoise_args, lipschitz_args


rule lipschitz:
    input:
        f"{OUT}/models/{{denoiser}}/model.pt",
    output:
        f"{OUT}/lipschitz/{{denoiser}}.csv",
    log:
        f"{OUT}/logs/lipschitz/{{denoiser}}.log",
    benchmark:
        f"{OUT}/benchmarks/lipschitz/{{denoiser}}.tsv"
    params:
        args=lipschitz_args(config),
        shared=SHARED,
        code=command_code_hash("lipschitz"),
    priority: 1
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench lipschitz --checkpoint {input} --out {output} {params.args} {params.shared} > {log} 2>&1"


rule denoise:
    input:
        f"{OUT}/models/{{denoiser}}/model.pt",
    output:
        f"{OUT}/denoise/{{denoiser}}.csv",
    log:
        f"{OUT}/logs/denoise/{{denoiser}}.log",
    benchmark:
        f"{OUT}/benchmarks/denoise/{{denoiser}}.tsv"
    params:
        args=denoise_args(config),
        shared=SHARED,
        code=command_code_hash("denoise"),
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench denoise --checkpoint {input} --out {output} {params.args} {params.shared} > {log} 2>&1"


# `snakemake certify`: a certificate per denoiser (lipbench certify), in the HTML report too
rule certify_denoiser:
    input:
        f"{OUT}/models/{{denoiser}}/model.pt",
    output:
        report(f"{OUT}/certify/{{denoiser}}/report.html", category="Certificates", labels={"denoiser": "{denoiser}"}),
        f"{OUT}/certify/{{denoiser}}/report.md",
        f"{OUT}/certify/{{denoiser}}/report.json",
        f"{OUT}/certify/{{denoiser}}/lipschitz.csv",
        f"{OUT}/certify/{{denoiser}}/intervals.csv",
        f"{OUT}/certify/{{denoiser}}/pnp.csv",
        f"{OUT}/certify/{{denoiser}}/model.pt",
    log:
        f"{OUT}/logs/certify/{{denoiser}}.log",
    benchmark:
        f"{OUT}/benchmarks/certify/{{denoiser}}.tsv"
    params:
        folder=lambda wildcards, output: os.path.dirname(output[0]),
        args=certify_args(config),
        shared=SHARED,
        code=command_code_hash("certify"),
    resources:
        gpu=1,
    conda:
        ENV
    shell:
        "lipbench certify --checkpoint {input} --out {params.folder} {params.args} {params.shared} > {log} 2>&1"


rule certify:
    input:
        expand(f"{OUT}/certify/{{denoiser}}/report.md", denoiser=certified_denoisers(config)),
