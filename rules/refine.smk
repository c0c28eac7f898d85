# Refinement of CAM scores and pseudo-mask writing; one results path per refinement.


rule tune_crf:
    input:
        data=data_input(),
        cams=rules.make_cams.output.cams,
        code=code("tune_crf"),
    output:
        sweep=f"{RESULTS}/tune_crf/sweep.csv",
        best=CRF_BEST,
        per_class=f"{RESULTS}/tune_crf/per_class.csv",
        plot=f"{RESULTS}/tune_crf/sweep.png",
    params:
        data_root=DATA_ROOT,
        split=config["splits"]["seeds"],
        thresholds=config["refine_crf"]["thresholds"],
        iterations=config["refine_crf"]["iterations"],
        gaussian_sxy=config["refine_crf"]["gaussian_sxy"],
        gaussian_compat=config["refine_crf"]["gaussian_compat"],
        bilateral_sxy=config["refine_crf"]["bilateral_sxy"],
        bilateral_srgb=config["refine_crf"]["bilateral_srgb"],
        bilateral_compat=config["refine_crf"]["bilateral_compat"],
        mask_folder=mask_folder_arg(),
    log:
        f"{LOGS}/tune_crf.log",
    benchmark:
        f"{BENCH}/tune_crf.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/wsss.yaml"
    shell:
        "{WSSS} tune_crf --cams {input.cams} --data-root {params.data_root} --split {params.split} --out-csv {output.sweep} --out-best {output.best} --out-per-class {output.per_class} --out-plot {output.plot} --thresholds {params.thresholds} --iterations {params.iterations} --gaussian-sxy {params.gaussian_sxy} --gaussian-compat {params.gaussian_compat} --bilateral-sxy {params.bilateral_sxy} --bilateral-srgb {params.bilateral_srgb} --bilateral-compat {params.bilateral_compat} {params.mask_folder} --threads {threads} > {log} 2>&1"


rule refine_crf:
    input:
        data=data_input(),
        cams=rules.make_cams.output.cams,
        best=threshold_input(config["refine_crf"]["bg_threshold"], CRF_BEST),
        code=code("refine_crf"),
    output:
        scores=directory(f"{RESULTS}/refine_crf/scores"),
    params:
        data_root=DATA_ROOT,
        threshold=threshold_arg(config["refine_crf"]["bg_threshold"], CRF_BEST),
        iterations=config["refine_crf"]["iterations"],
        gaussian_sxy=config["refine_crf"]["gaussian_sxy"],
        gaussian_compat=config["refine_crf"]["gaussian_compat"],
        bilateral_sxy=config["refine_crf"]["bilateral_sxy"],
        bilateral_srgb=config["refine_crf"]["bilateral_srgb"],
        bilateral_compat=config["refine_crf"]["bilateral_compat"],
    log:
        f"{LOGS}/refine_crf.log",
    benchmark:
        f"{BENCH}/refine_crf.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/wsss.yaml"
    shell:
        "{WSSS} refine_crf --cams {input.cams} --data-root {params.data_root} --out-dir {output.scores} {params.threshold} --iterations {params.iterations} --gaussian-sxy {params.gaussian_sxy} --gaussian-compat {params.gaussian_compat} --bilateral-sxy {params.bilateral_sxy} --bilateral-srgb {params.bilateral_srgb} --bilateral-compat {params.bilateral_compat} --threads {threads} > {log} 2>&1"


rule make_pseudo_masks:
    input:
        scores=scores_for,
        best=lambda wc: threshold_input(config["cam_bg_threshold"], CAM_BEST) if wc.refinement == "none" else [],
        code=code("make_pseudo_masks"),
    output:
        masks=directory(f"{RESULTS}/make_pseudo_masks/{{refinement}}/masks"),
    params:
        # the CAM threshold matters only when CAMs are written directly (refinement "none")
        threshold=lambda wc: threshold_arg(config["cam_bg_threshold"], CAM_BEST) if wc.refinement == "none" else "",
        band=lambda wc: (
            "--ignore-band " + " ".join(map(str, config["make_pseudo_masks"]["ignore_band"]))
            if config["make_pseudo_masks"]["ignore_band"]
            else ""
        ),
    log:
        f"{LOGS}/make_pseudo_masks_{{refinement}}.log",
    benchmark:
        f"{BENCH}/make_pseudo_masks_{{refinement}}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/wsss.yaml"
    shell:
        "{WSSS} make_pseudo_masks --scores {input.scores} --out-dir {output.masks} {params.threshold} {params.band} --threads {threads} > {log} 2>&1"


rule eval_pseudo_masks:
    input:
        data=data_input(),
        masks=rules.make_pseudo_masks.output.masks,
        code=code("eval_pseudo_masks"),
    output:
        metrics=f"{RESULTS}/eval_pseudo_masks/{{refinement}}/metrics.json",
        per_class=f"{RESULTS}/eval_pseudo_masks/{{refinement}}/per_class.csv",
    params:
        data_root=DATA_ROOT,
        split=config["splits"]["seeds"],
        mask_folder=mask_folder_arg(),
    log:
        f"{LOGS}/eval_pseudo_masks_{{refinement}}.log",
    benchmark:
        f"{BENCH}/eval_pseudo_masks_{{refinement}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/wsss.yaml"
    shell:
        "{WSSS} eval_pseudo_masks --masks {input.masks} --data-root {params.data_root} --split {params.split} --out-json {output.metrics} --out-csv {output.per_class} {params.mask_folder} > {log} 2>&1"
