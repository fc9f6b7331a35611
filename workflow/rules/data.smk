rule verify_data:
    output:
        f"{OUT}/data/verified.txt",
    log:
        f"{OUT}/logs/verify_data.log",
    params:
        sources=config["data"]["sources"],
        root=root_arg(config),
        code=command_code_hash("verify"),
    conda:
        ENV
    shell:
        "lipbench verify {params.root} --only {params.sources} > {output} 2> {log}"
