// Build the TensorRT engine on a GPU agent (label `jetson` by default). See modelEngine.txt.

Object call(Map given = [:]) {
    Map defaults = stepConfig.stageDefaults() + [label: 'jetson', unstash: null]
    Map cfg = stepConfig.merge('modelEngine', defaults, given)
    stepConfig.require('modelEngine', cfg, ['label'])
    if (stepConfig.onAgentWithLabel(cfg.label)) {
        return build(cfg)
    }
    return node(cfg.label) {
        if (cfg.unstash) {
            unstash(cfg.unstash)
        }
        build(cfg)
    }
}

Object build(Map cfg) {
    return stepConfig.runStage(cfg, ['engine', 'build'])
}
