// Promote a published version from one channel to another (dev -> staging -> release) without
// rebuilding it. See modelPromote.txt.

Map defaults() {
    return stepConfig.pytoolsDefaults() + stepConfig.registryDefaults() + [
        name: null,
        version: null,
        from: 'dev',
        to: 'release',
    ]
}

Object call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelPromote', defaults(), given)
    stepConfig.require('modelPromote', cfg, ['name', 'version', 'from', 'to'])
    List words = ['promote', cfg.name, cfg.version, '--from', cfg.from, '--to', cfg.to]
    return stepConfig.withRegistry('modelPromote', cfg) {
        pytools(stepConfig.pytoolsOptions(cfg) + [args: words])
    }
}
