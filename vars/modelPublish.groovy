// Build the package (optionally signed) and publish it to a registry channel.
// Credentials only through withCredentials; secrets are expanded by the shell. See modelPublish.txt.
import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonSlurperClassic

Map defaults() {
    return stepConfig.stageDefaults() + stepConfig.registryDefaults() + [
        prerelease: null,
        channel: 'dev',
        signKeyCredentialsId: null,
    ]
}

Map call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelPublish', defaults(), given)
    stepConfig.require('modelPublish', cfg, ['channel'])
    List buildArgs = cfg.prerelease ? ['--prerelease', cfg.prerelease] : []
    if (cfg.signKeyCredentialsId != null) {
        stepConfig.require('modelPublish', cfg, ['signKeyCredentialsId'])
        withCredentials([file(credentialsId: cfg.signKeyCredentialsId, variable: 'MODEL_CICD_SIGN_KEY')]) {
            stepConfig.runStage(cfg, ['package', 'build'], buildArgs, '--sign-key "$MODEL_CICD_SIGN_KEY"')
        }
    } else {
        stepConfig.runStage(cfg, ['package', 'build'], buildArgs)
    }
    String packageDir = "${cfg.workdir}/package"
    stepConfig.withRegistry('modelPublish', cfg) {
        pytools(stepConfig.pytoolsOptions(cfg) + [args: ['publish', packageDir, '--channel', cfg.channel]])
    }
    Map manifest = parse(readFile("${packageDir}/manifest.json"))
    return [name: manifest.name, version: manifest.version, platform: manifest.platform,
            channel: cfg.channel, packageDir: packageDir]
}

@NonCPS
Map parse(String text) {
    return new JsonSlurperClassic().parseText(text) as Map
}
