// The whole model pipeline as a declarative template: a model repo's Jenkinsfile is
//     @Library('model-cicd') _
//     modelPipeline(config: 'model.yaml', fleet: 'fleet/field.yaml')
// Merge requests: checkpoint, export, engine, parity, bench, publish a pre-release to `dev`.
// Release branch or tag: the same, then promote to `release` and a staged, approved rollout.
// See modelPipeline.txt.
import com.cloudbees.groovy.cps.NonCPS

Map defaults() {
    return stepConfig.pytoolsDefaults() + stepConfig.registryDefaults() + [
        config: 'model.yaml',
        workdir: 'work/ci',
        linuxLabel: 'linux',
        engineLabel: 'jetson',
        releaseBranch: 'main',
        releaseChannel: 'release',
        baseline: null,
        signKeyCredentialsId: null,
        fleet: null,
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
    Map published = [:]
    // Steps whose arguments are computed at run time sit in `script` blocks (declarative only
    // takes plain step calls in `steps`).

    pipeline {
        agent none
        options {
            buildDiscarder(logRotator(numToKeepStr: '50'))
        }
        stages {
            stage('Export') {
                agent { label cfg.linuxLabel }
                options { timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') }
                steps {
                    modelExport(stageCfg)
                    // ONNX/TorchScript travel to the GPU agent by stash; engines go via the registry.
                    stash(name: 'model-cicd-export', includes: "${cfg.workdir}/**")
                }
            }
            stage('GPU') {
                agent { label cfg.engineLabel }
                options { timeout(time: cfg.stageTimeoutMinutes, unit: 'MINUTES') }
                stages {
                    stage('Engine') {
                        steps {
                            unstash('model-cicd-export')
                            modelEngine(engineCfg)
                        }
                    }
                    stage('Parity') {
                        steps {
                            modelParity(stageCfg)
                        }
                    }
                    stage('Bench') {
                        steps {
                            modelBench(benchCfg)
                        }
                    }
                    stage('Publish') {
                        steps {
                            script {
                                published.putAll(publish(cfg, stageCfg + registry))
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
                    script {
                        modelPromote(registry + stepConfig.pytoolsOptions(cfg) + [
                            name: published.name, version: published.version, from: 'dev',
                            to: cfg.releaseChannel])
                    }
                }
            }
            stage('Rollout') {
                when {
                    allOf {
                        anyOf {
                            branch cfg.releaseBranch
                            buildingTag()
                        }
                        expression { cfg.fleet != null }
                    }
                }
                // No agent here: modelRollout takes one only to run pytools, never while waiting.
                steps {
                    script {
                        modelRollout(registry + stepConfig.pytoolsOptions(cfg) + [
                            name: published.name, version: published.version, fleet: cfg.fleet,
                            channel: cfg.releaseChannel, label: cfg.linuxLabel, submitter: cfg.submitter,
                            workdir: cfg.workdir, approvalTimeout: cfg.approvalTimeoutHours,
                            approvalTimeoutUnit: 'HOURS', sshCredentialsId: cfg.sshCredentialsId])
                    }
                }
            }
        }
    }
}

/** Publish to `dev` and show the package's one-line summary as the build description. */
Map publish(Map cfg, Map publishCfg) {
    Map published = modelPublish(publishCfg + [prerelease: prereleaseTag(cfg), channel: 'dev',
                                               signKeyCredentialsId: cfg.signKeyCredentialsId])
    currentBuild.description = pytools(stepConfig.pytoolsOptions(cfg) + [
        args: ['release', 'summary', published.packageDir], returnStdout: true]).trim()
    return published
}

/** `mr.<change>.<build>` for merge requests, `<branch>.<build>` for other branches, none (a
 * release version) for the release branch and tags. */
String prereleaseTag(Map cfg) {
    if (env.CHANGE_ID) {
        return "mr.${env.CHANGE_ID}.${env.BUILD_NUMBER}"
    }
    boolean release = env.TAG_NAME || env.BRANCH_NAME == cfg.releaseBranch
    return release ? null : "${semverIdentifier(env.BRANCH_NAME ?: 'build')}.${env.BUILD_NUMBER}"
}

/** A branch name as a semver pre-release identifier ([0-9a-z-] only). */
@NonCPS
String semverIdentifier(String branch) {
    return branch.toLowerCase().replaceAll(/[^0-9a-z-]+/, '-')
}
