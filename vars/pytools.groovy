// Run a `pytools` command in a virtualenv cached on the agent (keyed by the requirements hash).
// See pytools.txt.

Map defaults() {
    return stepConfig.pytoolsDefaults() + [
        args: null,
        rawArgs: null,
        returnStdout: false,
        returnStatus: false,
    ]
}

Object call(Map given) {
    Map cfg = stepConfig.merge('pytools', defaults(), given)
    stepConfig.require('pytools', cfg, ['args'])
    if (!(cfg.args instanceof List)) {
        error("pytools: 'args' must be a list of words, e.g. ['export', 'model.yaml']")
    }
    String script = stepConfig.quote(venv(cfg) + '/bin/pytools') + ' ' + stepConfig.command(cfg.args)
    if (cfg.rawArgs) {
        // Constant text from the calling step, e.g. '--sign-key "$MODEL_CICD_SIGN_KEY"': the
        // shell, not Groovy, expands the credential variable in it.
        script += ' ' + cfg.rawArgs
    }
    return sh(script: script, returnStdout: cfg.returnStdout, returnStatus: cfg.returnStatus)
}

/** Create (once per agent and requirements hash) and return the virtualenv's path. */
String venv(Map cfg) {
    writeFile(file: '.model-cicd/pytools-venv.sh', text: libraryResource('model-cicd/pytools-venv.sh'))
    List words = ['.model-cicd/pytools-venv.sh', cfg.requirements, cfg.python]
    if (cfg.cacheRoot) {
        words << cfg.cacheRoot
    }
    String out = sh(script: 'bash ' + stepConfig.command(words), returnStdout: true)
    return out.trim().readLines().last()
}
