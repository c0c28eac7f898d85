# The experiment's headline numbers.


rule summarize_metrics:
    input:
        unpack(summary_inputs),
        code=code("summarize_metrics"),
    output:
        json=f"{RESULTS}/metrics.json",
        md=f"{RESULTS}/metrics.md",
    params:
        refinement=refinement_of,
        segmentation=segmentation_arg,
        compare=compare_arg,
    log:
        f"{LOGS}/summarize_metrics.log",
    benchmark:
        f"{BENCH}/summarize_metrics.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages summarize_metrics --experiment {wildcards.exp} --cam-best {input.cam_best} --pseudo-masks {input.pseudo_masks} --pseudo-mask-dir {input.pseudo_mask_dir} {params.segmentation} --refinement {params.refinement} {params.compare} --out-json {output.json} --out-md {output.md} > {log} 2>&1"


# Not part of `all`: `snakemake --cores all benchmarks` (adds AffinityNet, the random walk and the
# fully-supervised upper bound to each experiment) — see benchmarks/README.md.
rule benchmarks:
    input:
        [f"results/{name}/benchmark.md" for name in EXPERIMENTS],


rule write_benchmark:
    input:
        cam_best=lambda wc: cam_best(wc, "cams"),
        pseudo_masks=lambda wc: [pseudo_mask_metrics(wc, r) for r in ALL_REFINEMENTS],
        segmentation=segmentation_metrics,
        upper_bound=lambda wc: segmentation_metrics(wc, "gt"),
        summary=rules.summarize_metrics.output.json,
        code=code("write_benchmark"),
    output:
        md=f"{RESULTS}/benchmark.md",
        csv=f"{RESULTS}/benchmark.csv",
    params:
        refinement=refinement_of,
        pseudo_masks=lambda wc: " ".join(f"{r}={pseudo_mask_metrics(wc, r)}" for r in ALL_REFINEMENTS),
        jobs=lambda wc: " ".join([*job_benchmarks(wc.exp, RUN.benchmark_nodes(wc.exp)), f"results/{wc.exp}/benchmarks/summarize_metrics.tsv"]),
    log:
        f"{LOGS}/write_benchmark.log",
    benchmark:
        f"{BENCH}/write_benchmark.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages write_benchmark --experiment {wildcards.exp} --cam-best {input.cam_best} --pseudo-masks {params.pseudo_masks} --segmentation {input.segmentation} --refinement {params.refinement} --upper-bound {input.upper_bound} --jobs {params.jobs} --out-md {output.md} --out-csv {output.csv} > {log} 2>&1"


# Several experiments (config key `experiments`): one table comparing them, written by `all`.
rule write_leaderboard:
    input:
        summaries=[f"results/{name}/metrics.json" for name in EXPERIMENTS],
        code=code("write_leaderboard"),
    output:
        md=f"{LEADERBOARD}.md",
        csv=f"{LEADERBOARD}.csv",
        plot=f"{LEADERBOARD}.png",
    params:
        summaries=" ".join(f"{name}=results/{name}/metrics.json" for name in EXPERIMENTS),
        jobs=" ".join(f"{name}={path}" for name in EXPERIMENTS for path in job_benchmarks(name)),
        labels=" ".join(shlex.quote(f"{name}={method_label(RUN.configs[name])}") for name in EXPERIMENTS),
    log:
        f"{LEADERBOARD}.log",
    benchmark:
        f"{LEADERBOARD}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages write_leaderboard --summaries {params.summaries} --jobs {params.jobs} --labels {params.labels} --out-md {output.md} --out-csv {output.csv} --out-plot {output.plot} > {log} 2>&1"
