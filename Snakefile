# lipbench: train denoisers over a λ grid, measure their Lipschitz constants, run PnP and
# equivariant PnP, aggregate. `snakemake --cores all` (config/config.yaml), or
# `snakemake --cores all --configfile config/ci.yaml`. Every step is a `lipbench` command.
from snakemake.utils import min_version, validate

min_version("9.0")


if not config:  # the quick run by default; a --configfile replaces it instead of being merged into it

    configfile: "config/config.yaml"



validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/lipschitz.smk"
include: "workflow/rules/pnp.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        expand(f"{OUT}/tables/{{table}}.{{ext}}", table=TABLES, ext=["csv", "md", "tex"]),
        f"{OUT}/tables/results.csv",
        expand(f"{OUT}/tables/grid.{{ext}}", ext=["csv", "md", "tex"]),
        expand(f"{OUT}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["pdf", "png"]),
    default_target: True
