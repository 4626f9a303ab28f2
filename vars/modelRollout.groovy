// Staged rollout to a fleet: each wave waits for a release manager's approval (input restricted
// to a submitter group, inside a timeout, holding no agent), a milestone after each approval so
// an older build can never roll out after a newer one, and a lock per fleet so two rollouts never
// overlap. The approvals record (who approved, aborted, or let a wave time out) is archived.
// See modelRollout.txt.
import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonOutput
import groovy.json.JsonSlurperClassic
import groovy.transform.Field
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException

// Exit statuses of `pytools rollout` (pytools/commands/rollout.py).
@Field final int EXIT_HALTED = 3
@Field final int EXIT_WAITING = 4
@Field final int EXIT_INCOMPLETE = 5
@Field final String RECORD_STASH = 'model-cicd-rollout-record'

Map defaults() {
    return stepConfig.pytoolsDefaults() + stepConfig.registryDefaults() + [
        name: null,
        version: null,
        fleet: null,
        channel: null,
        rolloutArgs: [],
        label: 'linux',
        submitter: 'release-managers',
        approvalTimeout: 24,
        approvalTimeoutUnit: 'HOURS',
        lockResource: null,
        sshCredentialsId: null,
        workdir: 'work/ci',
        agentTimeoutMinutes: 60,
        waveTimeoutMinutes: 360,
    ]
}

Map call(Map given = [:]) {
    Map cfg = stepConfig.merge('modelRollout', defaults(), given)
    stepConfig.require('modelRollout', cfg, ['name', 'version', 'fleet', 'label', 'submitter'])
    List decisions = []
    milestone(label: "rollout ${cfg.name} ${cfg.version}")
    lock(resource: cfg.lockResource ?: "fleet-${fleetName(cfg.fleet)}", inversePrecedence: true) {
        List waves = plan(cfg)
        for (int i = 0; i < waves.size(); i++) {
            Map wave = waves[i]
            String approver = approve(cfg, wave, i + 1, decisions)
            if (!approver?.trim()) {
                decisions << [wave: wave.name, robots: wave.robots, decision: 'refused', reason: 'no approver']
                record(cfg, decisions, "wave ${wave.name} approved without an approver")
                error("modelRollout: wave ${wave.name} of ${cfg.name} ${cfg.version} was approved but Jenkins " +
                      'returned no approver (pipeline-input-step before 532.v9e7466cb_4406 drops ' +
                      'submitterParameter on proceedEmpty); not rolling out: approve from the build page or ' +
                      'with pytools release approve, or update the plugin')
            }
            milestone(label: "rollout ${cfg.version} wave ${wave.name} approved")
            int status = runWave(cfg, i, approver)
            decisions << [wave: wave.name, robots: wave.robots, decision: 'approved', by: approver,
                          exitStatus: status]
            record(cfg, decisions, null)
            if (!checkStatus(cfg, wave, status, i == waves.size() - 1)) {
                break
            }
        }
    }
    return [name: cfg.name, version: cfg.version, waves: decisions]
}

/** `pytools rollout` for one wave. pytools pauses after each wave (exit 4) until resumed. */
int runWave(Map cfg, int index, String approver) {
    return onAgent(cfg, cfg.waveTimeoutMinutes) {
        // The rollout record lives in the workspace; it follows the rollout from agent to agent.
        if (index > 0) {
            unstash(RECORD_STASH)
        }
        List step = index == 0 ? [] : ['--resume', '--approved-by', approver]
        int status = pytools(stepConfig.pytoolsOptions(cfg) + [
            args: rolloutCommand(cfg) + step + ['--approval', 'external'] + cfg.rolloutArgs,
            returnStatus: true])
        stash(name: RECORD_STASH, includes: "${cfg.workdir}/rollouts/**", allowEmpty: true)
        archiveArtifacts(artifacts: "${cfg.workdir}/rollouts/*.json", allowEmptyArchive: true)
        status
    }
}

/** True to go on with the next wave; fails the build when pytools halted the rollout. */
boolean checkStatus(Map cfg, Map wave, int status, boolean last) {
    if (status == EXIT_HALTED) {
        error("modelRollout: wave ${wave.name} of ${cfg.name} ${cfg.version} halted: too many robots " +
              "failed (rolled back); see ${cfg.workdir}/rollouts/${cfg.name}-${cfg.version}.json")
    }
    if (status == EXIT_INCOMPLETE) {
        error("modelRollout: ${cfg.name} ${cfg.version} finished with robots not on it (deferred or failed); " +
              "see ${cfg.workdir}/rollouts/${cfg.name}-${cfg.version}.json")
    }
    boolean waiting = status == EXIT_WAITING && !last
    if (status != 0 && !waiting) {
        error("modelRollout: pytools rollout exited ${status} after wave ${wave.name}")
    }
    // 0: pytools finished, possibly early (every remaining robot already runs this version).
    return waiting
}

/** `pytools rollout NAME VERSION --fleet F --workdir W [--channel C]`. */
List rolloutCommand(Map cfg) {
    List words = ['rollout', cfg.name, cfg.version, '--fleet', cfg.fleet, '--workdir', cfg.workdir]
    return cfg.channel ? words + ['--channel', cfg.channel] : words
}

/** The waves pytools plans for this fleet, as [[name: 'canary', robots: [...]], ...]. */
List plan(Map cfg) {
    String out = onAgent(cfg, cfg.agentTimeoutMinutes) {
        pytools(stepConfig.pytoolsOptions(cfg) + [
            args: rolloutCommand(cfg) + ['--dry-run', '--json'] + cfg.rolloutArgs, returnStdout: true])
    }
    List waves = parsePlan(out)
    if (!waves) {
        error("modelRollout: the rollout plan for ${cfg.fleet} has no waves")
    }
    return waves
}

/** Wait (on no agent) for a submitter to approve the wave; return the approver's user id. */
String approve(Map cfg, Map wave, int index, List decisions) {
    String message = approvalMessage(cfg.name, cfg.version, wave)
    try {
        return timeout(time: cfg.approvalTimeout, unit: cfg.approvalTimeoutUnit) {
            input(id: "Wave${index}", message: message, ok: 'Roll out',
                  submitter: cfg.submitter, submitterParameter: 'approver')
        }
    } catch (FlowInterruptedException e) {
        String reason = interruption(e)
        decisions << [wave: wave.name, robots: wave.robots, decision: 'halted', reason: reason]
        String halt = "rollout of ${cfg.name} ${cfg.version} halted at wave ${wave.name}: ${reason}"
        currentBuild.description = [currentBuild.description, halt].findAll { line -> line }.join('\n')
        echo(halt)
        record(cfg, decisions, halt)
        throw e
    }
}

/** Write and archive the approvals record (needs a workspace, so briefly takes an agent). */
void record(Map cfg, List decisions, String halted) {
    onAgent(cfg, cfg.agentTimeoutMinutes) {
        String path = "${cfg.workdir}/reports/rollout-approvals.json"
        writeFile(file: path, text: JsonOutput.prettyPrint(JsonOutput.toJson(
            [name: cfg.name, version: cfg.version, fleet: cfg.fleet, halted: halted, waves: decisions])))
        archiveArtifacts(artifacts: path)
    }
}

/**
 * `body` on a `label` agent with this build's commit checked out (waves run hours apart: the
 * agent's workspace may hold another build's commit, or nothing). `minutes` bounds the wait for
 * the agent plus the work: nothing here waits without a limit.
 */
Object onAgent(Map cfg, int minutes, Closure body) {
    return stepConfig.withRegistry('modelRollout', cfg) {
        timeout(time: minutes, unit: 'MINUTES') {
            node(cfg.label) {
                checkout(scm)
                withSsh(cfg, body)
            }
        }
    }
}

Object withSsh(Map cfg, Closure body) {
    if (cfg.sshCredentialsId == null) {
        return body()
    }
    return withCredentials([sshUserPrivateKey(credentialsId: cfg.sshCredentialsId,
                                               keyFileVariable: 'MODEL_CICD_SSH_KEY',
                                               usernameVariable: 'MODEL_CICD_SSH_USER')]) {
        body()
    }
}

// `pytools release pending` parses this text (pytools/jenkins.py APPROVAL_MESSAGE): keep in step.
@NonCPS
String approvalMessage(String name, String version, Map wave) {
    return "Roll out ${name} ${version} to wave ${wave.name} " +
           "(${wave.robots.size()} robots: ${wave.robots.join(', ')})"
}

@NonCPS
String interruption(FlowInterruptedException e) {
    for (Object cause in e.causes) {
        String kind = cause.getClass().simpleName
        if (kind == 'Rejection') {
            return "aborted by ${cause.user?.id ?: 'an unknown user'}"
        }
        if (kind == 'ExceededTimeout') {
            return 'no approval before the timeout'
        }
    }
    return "interrupted (${e.causes*.shortDescription.join('; ')})"
}

@NonCPS
List parsePlan(String text) {
    Object plan = new JsonSlurperClassic().parseText(text)
    List waves = plan instanceof Map ? (plan.waves ?: []) : []
    return waves.collect { Map wave ->
        [name: wave.name.toString(),
         robots: (wave.robots ?: []).collect { robot -> robot instanceof Map ? robot.name.toString() : robot.toString() }]
    }
}

@NonCPS
String fleetName(String inventory) {
    return inventory.tokenize('/').last().replaceFirst(/\.[^.]*$/, '')
}
