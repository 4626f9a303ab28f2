// Build the TensorRT engine on a GPU agent (label `jetson` by default). See modelEngine.txt.

Object call(Map given = [:]) {
    Map defaults = stepConfig.stageDefaults() + [label: 'jetson', unstash: null]
    Map cfg = stepConfig.merge('modelEngine', defaults, given)
    stepConfig.require('modelEngine', cfg, ['label'])
    // In place when this agent satisfies the label expression: a second executor on a
    // single-executor Jetson would wait for the one this build already holds.
    if (stepConfig.onAgentWithLabel(cfg.label)) {
        return build(cfg)
    }
    return node(cfg.label) {
        // A fresh agent has no checkout of this build's commit (or a stale one): check it out.
        checkout(scm)
        if (cfg.unstash) {
            unstash(cfg.unstash)
        }
        build(cfg)
    }
}

Object build(Map cfg) {
    return stepConfig.runStage(cfg, ['engine', 'build'])
}
