# lipbench: train denoisers over a λ grid, measure their Lipschitz constants, run PnP and
# equivariant PnP, aggregate, and compare with the published reference. `snakemake --cores all`
# (config/config.yaml: the quick run) or `--configfile config/ci.yaml`. Every rule is one
# `lipbench` step; docs/architecture.md draws the graph, docs/workflow.md explains it.
from snakemake.utils import min_version

from lipbench.workflow.config import read_config, validated
from lipbench.workflow.preflight import preflight

min_version("9.0")


if not config:  # the quick run by default; a --configfile replaces it instead of being merged into it

    configfile: "config/config.yaml"


for path in workflow.configfiles:  # as Snakemake read them, but a key written twice is an error
    read_config(path)
# the schema (workflow/schemas/config.schema.yaml + every step's options), the workflow's defaults,
# then what a job would refuse (a crop larger than its images, a model that does not build...)
config.update(validated(config))
preflight(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/lipschitz.smk"
include: "workflow/rules/pnp.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/reference.smk"


# Bookkeeping runs where Snakemake runs, never as a cluster job: the checksums, the tables, the figures
# and the comparison take seconds, less than a submission and its queue (on a cluster: the login node).
localrules:
    verify_data,
    aggregate,
    calibrate,
    figures,
    reference,


report: "workflow/report/workflow.rst"


rule all:
    input:
        expand(f"{OUT}/tables/{{table}}.{{ext}}", table=TABLES, ext=["csv", "md", "tex"]),
        f"{OUT}/tables/results.csv",
        expand(f"{OUT}/tables/grid.{{ext}}", ext=["csv", "md", "tex"]),
        expand(f"{OUT}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["pdf", "png"]),
        f"{OUT}/reference.md",
    default_target: True


onsuccess:
    print_reference(f"{OUT}/reference.md")
