from lipbench.workflow.rules import denoise_args, lipschitz_args


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
