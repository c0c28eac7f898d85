# Refinement of CAM scores and pseudo-mask writing; one results path per refinement.


rule tune_crf:
    input:
        data=data_input,
        cams=seeds,
        code=code("tune_crf"),
    output:
        sweep=f"{RESULTS}/tune_crf/sweep.csv",
        best=f"{RESULTS}/tune_crf/best.json",
        per_class=f"{RESULTS}/tune_crf/per_class.csv",
        plot=f"{RESULTS}/tune_crf/sweep.png",
    params:
        data_root=data_root,
        split=setting("splits", "seeds"),
        thresholds=setting("refine_crf", "thresholds"),
        iterations=setting("refine_crf", "iterations"),
        gaussian_sxy=setting("refine_crf", "gaussian_sxy"),
        gaussian_compat=setting("refine_crf", "gaussian_compat"),
        bilateral_sxy=setting("refine_crf", "bilateral_sxy"),
        bilateral_srgb=setting("refine_crf", "bilateral_srgb"),
        bilateral_compat=setting("refine_crf", "bilateral_compat"),
        mask_folder=mask_folder_arg,
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
        "python -m wsss_stages tune_crf --cams {input.cams} --data-root {params.data_root} --split {params.split} --out-csv {output.sweep} --out-best {output.best} --out-per-class {output.per_class} --out-plot {output.plot} --thresholds {params.thresholds} --iterations {params.iterations} --gaussian-sxy {params.gaussian_sxy} --gaussian-compat {params.gaussian_compat} --bilateral-sxy {params.bilateral_sxy} --bilateral-srgb {params.bilateral_srgb} --bilateral-compat {params.bilateral_compat} {params.mask_folder} --threads {threads} > {log} 2>&1"


rule refine_crf:
    input:
        data=data_input,
        scores=cam_folder,
        best=background_input("crf", "source"),
        code=code("refine_crf"),
    output:
        scores=directory(f"{RESULTS}/refine_crf/{{source}}/scores"),
    params:
        data_root=data_root,
        # CAMs: the tune_crf background score; walked CAMs: the random walk's threshold
        threshold=background_arg("crf", "source"),
        iterations=setting("refine_crf", "iterations"),
        gaussian_sxy=setting("refine_crf", "gaussian_sxy"),
        gaussian_compat=setting("refine_crf", "gaussian_compat"),
        bilateral_sxy=setting("refine_crf", "bilateral_sxy"),
        bilateral_srgb=setting("refine_crf", "bilateral_srgb"),
        bilateral_compat=setting("refine_crf", "bilateral_compat"),
    log:
        f"{LOGS}/refine_crf_{{source}}.log",
    benchmark:
        f"{BENCH}/refine_crf_{{source}}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages refine_crf --scores {input.scores} --data-root {params.data_root} --out-dir {output.scores} {params.threshold} --iterations {params.iterations} --gaussian-sxy {params.gaussian_sxy} --gaussian-compat {params.gaussian_compat} --bilateral-sxy {params.bilateral_sxy} --bilateral-srgb {params.bilateral_srgb} --bilateral-compat {params.bilateral_compat} --threads {threads} > {log} 2>&1"


rule make_affinity_labels:
    input:
        data=data_input,
        cams=seeds,
        code=code("make_affinity_labels"),
    output:
        labels=directory(f"{RESULTS}/make_affinity_labels/labels"),
    params:
        data_root=data_root,
        conf_fg=setting("make_affinity_labels", "conf_fg"),
        conf_bg=setting("make_affinity_labels", "conf_bg"),
        crf=lambda wc: flag("crf", cfg(wc)["make_affinity_labels"]["crf"]),
    log:
        f"{LOGS}/make_affinity_labels.log",
    benchmark:
        f"{BENCH}/make_affinity_labels.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages make_affinity_labels --cams {input.cams} --data-root {params.data_root} --out-dir {output.labels} --conf-fg {params.conf_fg} --conf-bg {params.conf_bg} {params.crf} --threads {threads} > {log} 2>&1"


rule train_affinitynet:
    input:
        data=data_input,
        classifier=artifact("train_classifier", "model.pt"),
        labels=artifact("make_affinity_labels", "labels"),
        code=code("train_affinitynet"),
    output:
        model=f"{RESULTS}/train_affinitynet/model.pt",
    params:
        data_root=data_root,
        split=setting("splits", "classifier"),
        stride=setting("train_affinitynet", "stride"),
        radius=setting("train_affinitynet", "radius"),
        dim=setting("train_affinitynet", "dim"),
        freeze=lambda wc: flag("freeze-backbone", cfg(wc)["train_affinitynet"]["freeze_backbone"]),
        epochs=setting("train_affinitynet", "epochs"),
        batch_size=setting("train_affinitynet", "batch_size"),
        crop_size=setting("train_affinitynet", "crop_size"),
        scale_range=setting("train_affinitynet", "scale_range"),
        lr=setting("train_affinitynet", "lr"),
        weight_decay=setting("train_affinitynet", "weight_decay"),
        momentum=setting("train_affinitynet", "momentum"),
        workers=setting("train_affinitynet", "workers"),
        seed=setting("seed"),
        device=device,
    log:
        f"{LOGS}/train_affinitynet.log",
    benchmark:
        f"{BENCH}/train_affinitynet.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages train_affinitynet --classifier {input.classifier} --labels {input.labels} --data-root {params.data_root} --split {params.split} --out-model {output.model} --stride {params.stride} --radius {params.radius} --dim {params.dim} {params.freeze} --epochs {params.epochs} --batch-size {params.batch_size} --crop-size {params.crop_size} --scale-range {params.scale_range} --lr {params.lr} --weight-decay {params.weight_decay} --momentum {params.momentum} --workers {params.workers} --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule random_walk:
    input:
        data=data_input,
        model=artifact("train_affinitynet", "model.pt"),
        cams=seeds,
        code=code("random_walk"),
    output:
        cams=directory(f"{RESULTS}/random_walk/cams"),
    params:
        data_root=data_root,
        beta=setting("random_walk", "beta"),
        exp_times=setting("random_walk", "exp_times"),
        radius=setting("random_walk", "radius"),
        device=device,
    log:
        f"{LOGS}/random_walk.log",
    benchmark:
        f"{BENCH}/random_walk.tsv"
    threads: heavy_threads()
    resources:
        mem_mb=4000,
        runtime=240,
        gpu=gpus,
    conda:
        "../envs/wsss.yaml"
    shell:
        "python -m wsss_stages random_walk --model {input.model} --cams {input.cams} --data-root {params.data_root} --out-dir {output.cams} --beta {params.beta} --exp-times {params.exp_times} --radius {params.radius} --device {params.device} --threads {threads} > {log} 2>&1"


rule make_pseudo_masks:
    wildcard_constraints:
        refinement=r"none|crf|rw|rw\+crf",
    input:
        scores=scores_for,
        best=background_input("mask", "refinement"),
        code=code("make_pseudo_masks"),
    output:
        masks=directory(f"{RESULTS}/make_pseudo_masks/{{refinement}}/masks"),
    params:
        # a threshold matters only for CAM-format maps (refinements none and rw)
        threshold=background_arg("mask", "refinement"),
        band=ignore_band_arg,
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
        "python -m wsss_stages make_pseudo_masks --scores {input.scores} --out-dir {output.masks} {params.threshold} {params.band} --threads {threads} > {log} 2>&1"


rule eval_pseudo_masks:
    wildcard_constraints:
        refinement=r"none|crf|rw|rw\+crf",
    input:
        data=data_input,
        masks=pseudo_masks,
        code=code("eval_pseudo_masks"),
    output:
        metrics=f"{RESULTS}/eval_pseudo_masks/{{refinement}}/metrics.json",
        per_class=f"{RESULTS}/eval_pseudo_masks/{{refinement}}/per_class.csv",
    params:
        data_root=data_root,
        split=setting("splits", "seeds"),
        mask_folder=mask_folder_arg,
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
        "python -m wsss_stages eval_pseudo_masks --masks {input.masks} --data-root {params.data_root} --split {params.split} --out-json {output.metrics} --out-csv {output.per_class} {params.mask_folder} > {log} 2>&1"
