# The experiment's headline numbers.


rule summarize_metrics:
    input:
        cam_best=CAM_BEST["cams"],
        pseudo_masks=f"{RESULTS}/eval_pseudo_masks/{REFINEMENT}/metrics.json",
        pseudo_mask_dir=f"{RESULTS}/make_pseudo_masks/{REFINEMENT}/masks",
        compare=[f"{RESULTS}/eval_pseudo_masks/{r}/metrics.json" for r in reported_refinements()[1:]],
        segmentation=f"{RESULTS}/eval_segmentation/{REFINEMENT}/metrics.json",
        code=code("summarize_metrics"),
    output:
        json=f"{RESULTS}/metrics.json",
        md=f"{RESULTS}/metrics.md",
    params:
        experiment=EXPERIMENT,
        refinement=REFINEMENT,
        compare=compare_arg(),
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
        "python -m wsss_stages summarize_metrics --experiment {params.experiment} --cam-best {input.cam_best} --pseudo-masks {input.pseudo_masks} --pseudo-mask-dir {input.pseudo_mask_dir} --segmentation {input.segmentation} --refinement {params.refinement} {params.compare} --out-json {output.json} --out-md {output.md} > {log} 2>&1"


# Not part of `all`: `snakemake --cores all write_benchmark` (adds AffinityNet, the random walk and the
# fully-supervised upper bound to the experiment) — see benchmarks/README.md.
rule write_benchmark:
    input:
        cam_best=CAM_BEST["cams"],
        pseudo_masks=[f"{RESULTS}/eval_pseudo_masks/{r}/metrics.json" for r in ALL_REFINEMENTS],
        segmentation=f"{RESULTS}/eval_segmentation/{REFINEMENT}/metrics.json",
        upper_bound=f"{RESULTS}/eval_segmentation/gt/metrics.json",
        summary=rules.summarize_metrics.output.json,
        code=code("write_benchmark"),
    output:
        md=f"{RESULTS}/benchmark.md",
        csv=f"{RESULTS}/benchmark.csv",
    params:
        experiment=EXPERIMENT,
        refinement=REFINEMENT,
        pseudo_masks=" ".join(f"{r}={RESULTS}/eval_pseudo_masks/{r}/metrics.json" for r in ALL_REFINEMENTS),
        benchmarks=BENCH,
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
        "python -m wsss_stages write_benchmark --experiment {params.experiment} --cam-best {input.cam_best} --pseudo-masks {params.pseudo_masks} --segmentation {input.segmentation} --refinement {params.refinement} --upper-bound {input.upper_bound} --benchmarks {params.benchmarks} --out-md {output.md} --out-csv {output.csv} > {log} 2>&1"
