// The whole model pipeline as a declarative template: a model repo's Jenkinsfile is
//     @Library('model-cicd') _
//     modelPipeline(config: 'model.yaml', fleet: 'fleet/field.yaml')
// Merge requests: checkpoint, export, engine, parity, bench, publish a `-mr.N.B` pre-release to `dev`.
// Release branch: the same as `-rc.B`, promoted to staging (rolled out to `stagingFleet` if set).
// Tag vX.Y.Z: the release X.Y.Z, promoted to `release` and rolled out to `fleet` (approved waves).
// See modelPipeline.txt.
import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonSlurperClassic

Map defaults() {
    return stepConfig.pytoolsDefaults() + stepConfig.registryDefaults() + [
        config: 'model.yaml',
        workdir: 'work/ci',
        linuxLabel: 'linux',
        engineLabel: 'jetson',
        releaseBranch: 'main',
        releaseChannel: 'release',
        stagingChannel: 'staging',
        baseline: null,
        signKeyCredentialsId: null,
        fleet: null,
        stagingFleet: null,
        submitter: 'release-managers',
        approvalTimeoutHours: 24,
        sshCredentialsId: null,
        stageTimeoutMinutes: 120,
    ]
}

void call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelPipeline', defaults(), given)
    Map stageCfg = [config: cfg.config, workdir: cfg.workdir] + stepConfig.pytoolsOptions(cfg)
    Map registry = [registryCredentialsId: cfg.registryCredentialsId,
                    registryCredentialsType: cfg.registryCredentialsType]
    Map engineCfg = stageCfg + [label: cfg.engineLabel]
    Map benchCfg = stageCfg + [baseline: cfg.baseline]
    Map model = [:]
    Map published = [:]
    // Steps whose arguments are computed at run time sit in `script` blocks (declarative only
    // takes plain step calls in `steps`). Stage timeouts are inside `steps`, so they count the
    // work and not the wait for an agent (a stage-level `options { timeout }` would count both).

    pipeline {
        agent none
        options {
            buildDiscarder(logRotator(numToKeepStr: '50'))
        }
        stages {
            stage('Export') {
                agent { label cfg.linuxLabel }
                steps {
                    timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                        script {
                            model.putAll(modelVersion(cfg))
                        }
                        modelExport(stageCfg)
                    }
                }
            }
            stage('GPU') {
                agent { label cfg.engineLabel }
                stages {
                    stage('Engine') {
                        steps {
                            timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                                // No model files through the controller: the GPU agent fetches the
                                // checkpoint (sha256-checked) and rebuilds the export itself.
                                modelExport(stageCfg)
                                modelEngine(engineCfg)
                            }
                        }
                    }
                    stage('Parity') {
                        steps {
                            timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                                modelParity(stageCfg)
                            }
                        }
                    }
                    stage('Bench') {
                        steps {
                            timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                                modelBench(benchCfg)
                            }
                        }
                    }
                    stage('Publish') {
                        steps {
                            timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                                script {
                                    published.putAll(publish(cfg, stageCfg + registry, model))
                                }
                            }
                        }
                    }
                }
            }
            stage('Release') {
                when {
                    beforeAgent true
                    anyOf {
                        branch cfg.releaseBranch
                        buildingTag()
                    }
                }
                agent { label cfg.linuxLabel }
                steps {
                    timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') {
                        script {
                            promote(cfg, registry, published)
                        }
                    }
                }
            }
            stage('Rollout') {
                when {
                    expression { rolloutFleet(cfg) != null }
                }
                // No agent here: modelRollout takes one only to run pytools, never while waiting.
                steps {
                    script {
                        rollout(cfg, registry, published)
                    }
                }
            }
        }
    }
}

/** The config's name and version; on a tag build, the tag must be `v` + that version. */
Map modelVersion(Map cfg) {
    String out = pytools(stepConfig.pytoolsOptions(cfg) + [
        args: ['config', 'check', cfg.config, '--no-import', '--json'], returnStdout: true])
    Map model = configIdentity(out)
    String problem = env.TAG_NAME ? tagProblem(env.TAG_NAME, model.version, cfg.config) : null
    if (problem) {
        error("modelPipeline: ${problem}")
    }
    return model
}

/**
 * Publish to `dev` and show the package's one-line summary as the build description. A tag build
 * whose release is already in the registry (a rebuild) re-uses it: released versions are
 * immutable, and that one was built from this tag.
 */
Map publish(Map cfg, Map publishCfg, Map model) {
    Map held = env.TAG_NAME ? publishedRelease(cfg, model) : [:]
    if (held) {
        currentBuild.description = "${held.name} ${held.version}: already published " +
            "(${held.channels.join(', ')}), re-used"
        echo(currentBuild.description)
        return held
    }
    Map published = modelPublish(publishCfg + [prerelease: prereleaseTag(cfg), channel: 'dev',
                                               signKeyCredentialsId: cfg.signKeyCredentialsId])
    currentBuild.description = pytools(stepConfig.pytoolsOptions(cfg) + [
        args: ['release', 'summary', published.packageDir], returnStdout: true]).trim()
    return published + [channels: ['dev']]
}

/** The registry's copy of release `model.version`, as [name, version, channels], or [:]. */
Map publishedRelease(Map cfg, Map model) {
    String out = stepConfig.withRegistry('modelPipeline', cfg) {
        pytools(stepConfig.pytoolsOptions(cfg) + [args: ['versions', model.name, '--json'], returnStdout: true])
    }
    return findVersion(out, model.name, model.version)
}

/** Promote to `staging` (release branch) or `releaseChannel` (tag), unless a rebuild did already. */
void promote(Map cfg, Map registry, Map published) {
    String to = targetChannel(cfg)
    if (to in published.channels) {
        echo("${published.name} ${published.version} is already in ${to}")
        return
    }
    modelPromote(registry + stepConfig.pytoolsOptions(cfg) + [
        name: published.name, version: published.version, from: 'dev', to: to])
}

void rollout(Map cfg, Map registry, Map published) {
    modelRollout(registry + stepConfig.pytoolsOptions(cfg) + [
        name: published.name, version: published.version, fleet: rolloutFleet(cfg),
        channel: targetChannel(cfg), label: cfg.linuxLabel, submitter: cfg.submitter,
        workdir: cfg.workdir, approvalTimeout: cfg.approvalTimeoutHours,
        approvalTimeoutUnit: 'HOURS', sshCredentialsId: cfg.sshCredentialsId])
}

String targetChannel(Map cfg) {
    return env.TAG_NAME ? cfg.releaseChannel : cfg.stagingChannel
}

/** `fleet` for tag builds, `stagingFleet` for the release branch, else null (no rollout). */
String rolloutFleet(Map cfg) {
    if (env.TAG_NAME) {
        return cfg.fleet
    }
    return !env.CHANGE_ID && env.BRANCH_NAME == cfg.releaseBranch ? cfg.stagingFleet : null
}

/** `mr.<change>.<build>` for merge requests, `rc.<build>` for the release branch,
 * `<branch>.<build>` for other branches, none (the release version) for tags. */
String prereleaseTag(Map cfg) {
    if (env.CHANGE_ID) {
        return "mr.${env.CHANGE_ID}.${env.BUILD_NUMBER}"
    }
    if (env.TAG_NAME) {
        return null
    }
    String kind = env.BRANCH_NAME == cfg.releaseBranch ? 'rc' : semverIdentifier(env.BRANCH_NAME ?: 'build')
    return "${kind}.${env.BUILD_NUMBER}"
}

/** A branch name as a semver pre-release identifier ([0-9a-z-] only). */
@NonCPS
String semverIdentifier(String branch) {
    return branch.toLowerCase().replaceAll(/[^0-9a-z-]+/, '-')
}

@NonCPS
Map configIdentity(String json) {
    Map config = new JsonSlurperClassic().parseText(json).config as Map
    return [name: config.name.toString(), version: config.version.toString()]
}

/** Why `tag` cannot release `version`, or null when it is exactly `v<version>`. */
@NonCPS
String tagProblem(String tag, String version, String configFile) {
    if (tag == "v${version}") {
        return null
    }
    return "tag ${tag} does not match the version in ${configFile} (${version}); " +
        "a release tag must be v${version}, or change the version in ${configFile}"
}

/** [name, version, channels] of `version` (build metadata ignored) in `pytools versions --json`, or [:]. */
@NonCPS
Map findVersion(String json, String name, String version) {
    List rows = (new JsonSlurperClassic().parseText(json).versions ?: []) as List
    Map row = rows.find { Map r -> r.version.toString().tokenize('+')[0] == version } as Map
    return row ? [name: name, version: row.version.toString(), channels: row.channels*.toString(), reused: true] : [:]
}
