import hudson.AbortException
import hudson.model.User
import java.nio.file.NoSuchFileException
import org.codehaus.groovy.control.CompilerConfiguration
import org.jenkinsci.plugins.workflow.steps.FlowInterruptedException
import org.jenkinsci.plugins.workflow.steps.TimeoutStepExecution
import org.jenkinsci.plugins.workflow.support.steps.input.Rejection

/**
 * Loads the library's real `vars/*.groovy` into Groovy 2.4 and records every pipeline step they
 * call. Steps behave as Jenkins' do where the library depends on it:
 * - `sh`, `writeFile`, `readFile`, `junit`, `archiveArtifacts`, `stash`, `unstash` need a
 *   workspace, i.e. must run inside `node` (Jenkins: "Required context class hudson.FilePath is
 *   missing");
 * - `withCredentials` resolves ids in a credentials store (unknown id: "Could not find credentials
 *   entry with ID '...'"; wrong type refused) and exposes secrets only as environment variables;
 * - `input` is settled by scripted release managers: only a user named in `submitter`, or in one of
 *   its groups, can approve; an abort ends in FlowInterruptedException(Rejection(user)); nobody
 *   settling it ends in the enclosing `timeout` (ExceededTimeout) or, with no timeout, a test
 *   failure (the build would wait forever);
 * - `lock` refuses re-entry into a held resource, `milestone` counts ordinals;
 * - every agent has its own workspace, kept between `node` blocks (as Jenkins reuses a workspace
 *   directory) and possibly left at another commit by another build (`otherBuildLeft`): only
 *   `checkout scm` (the build's own commit, `commit`) or `unstash` puts files there, and `sh`
 *   running pytools fails as pytools-venv.sh does when `requirements.txt` (or the `--fleet`
 *   inventory) is missing; each sh call records the commit its workspace holds;
 * - `input` returns what pipeline-input-step returns: the approver's id with `submitterParameter`
 *   (or null when approved through `proceedEmpty` on releases before 532.v9e7466cb_4406,
 *   `oldInputPlugin`); Administer users may approve any input, Job/Cancel users may abort it.
 */
class PipelineHarness {
    final File root
    final Binding binding = new Binding()
    final List<Map> calls = []
    final Map env = [BUILD_NUMBER: '7', JOB_NAME: 'weed-detector',
                     BUILD_URL: 'https://ci.example/job/weed-detector/7/']
    final Map credentials = [:]
    final List<Map> shRules = []
    final List<Map> inputAnswers = []
    final Map<String, List<String>> groups = [
        alice: ['release-managers'], carol: ['release-managers'], bob: ['developers']]
    final Map<String, String> files = [:]
    /** The repository at the build's commit: what `checkout scm` brings into a workspace. */
    final Set<String> repository = ['requirements.txt', 'ci/req.txt', 'model.yaml', 'models/weed.yaml',
                                    'fleet/east.yaml', 'fleet/field-east.yaml'] as Set
    String commit = '5a1e0c2'
    /** agent name -> [commit: String, paths: Set] */
    final Map<String, Map> workspaces = [:]
    final Map<String, Map> stashes = [:]
    final Set<String> admins = ['root'] as Set
    final Set<String> cancellers = [] as Set
    boolean oldInputPlugin = false
    final FakeRun currentBuild = new FakeRun()
    final List<String> log = []
    String currentNode
    int timeoutDepth = 0
    final Set<String> heldLocks = [] as Set
    final Set<String> boundVariables = [] as Set
    final Set<String> secrets = [] as Set
    int milestones = 0
    private final GroovyShell shell

    PipelineHarness(File root) {
        this.root = root
        CompilerConfiguration cc = new CompilerConfiguration()
        cc.scriptBaseClass = PipelineScript.name
        cc.addCompilationCustomizers(new CpsTransform())
        CpsRecorder.reset()
        shell = new GroovyShell(getClass().classLoader, binding, cc)
        defineSteps()
        new File(root, 'vars').listFiles().findAll { it.name.endsWith('.groovy') }.sort().each { File f ->
            String name = f.name - '.groovy'
            binding.setVariable(name, shell.parse(f.text, name))
        }
    }

    // -- what tests configure

    PipelineHarness onSh(String pattern, String stdout, int status = 0) {
        shRules << [pattern: pattern, stdout: stdout, status: status]
        return this
    }

    PipelineHarness credential(String id, Map spec) {
        credentials[id] = spec
        return this
    }

    PipelineHarness answerInput(Map answer) {
        inputAnswers << answer
        return this
    }

    Object run(String step, Map config) {
        return ((Script) binding.getVariable(step)).invokeMethod('call', [config] as Object[])
    }

    /** Run a step inside `node(label)` after `checkout scm`, as a declarative stage with an agent would. */
    Object runOn(String label, String step, Map config) {
        return ((Closure) binding.getVariable('node')).call(label) {
            ((Closure) binding.getVariable('checkout')).call(binding.getVariable('scm'))
            run(step, config)
        }
    }

    /** Another build of the branch left `paths` at `otherCommit` in that agent's workspace. */
    PipelineHarness otherBuildLeft(String agent, String otherCommit, Collection<String> paths = repository) {
        workspaces[agent] = [commit: otherCommit, paths: paths as Set]
        return this
    }

    /** The agent's workspace (created empty on first use). */
    Map workspace(String agent = env.NODE_NAME) {
        return workspaces.computeIfAbsent(agent) { [commit: null, paths: [] as Set] }
    }

    /** Run `body`; return the exception it throws (a test failure if it throws none). */
    Throwable failure(Closure body) {
        try {
            body()
        // A test inspects whatever the step threw.
        // groovylint-disable-next-line CatchThrowable
        } catch (Throwable t) {
            return t
        }
        throw new AssertionError('expected the step to fail, but it succeeded')
    }

    // -- what tests read

    List<Map> callsOf(String step) {
        return calls.findAll { it.step == step }
    }

    List<String> shScripts() {
        return callsOf('sh')*.script
    }

    /** The sh scripts that ran pytools, with the cached venv's path replaced by `pytools`. */
    List<String> pytoolsCommands() {
        return shScripts().findAll { it.contains('/bin/pytools') }*.replaceFirst(/^'[^']*\/bin\/pytools'/, 'pytools')
    }

    List<String> stepNames() {
        return calls*.step
    }

    // -- the steps

    private void record(String step, Map details) {
        calls << ([step: step, node: currentNode] + details)
    }

    private void needWorkspace(String step) {
        if (currentNode == null) {
            throw new IllegalStateException("${step}: Required context class hudson.FilePath is missing. " +
                'Perhaps you forgot to surround the code with a step that provides this, such as: node')
        }
    }

    private String text(Object value) {
        return value == null ? null : value.toString()
    }

    private void defineSteps() {
        binding.setVariable('env', env)
        binding.setVariable('params', [:])
        binding.setVariable('currentBuild', currentBuild)
        step('echo') { String message -> record('echo', [message: message]); log << message }
        step('error') { String message -> record('error', [message: message]); throw new AbortException(message) }
        step('sh') { Object arg -> sh(arg) }
        step('node') { Object... args -> node(args) }
        step('stage') { String name, Closure body -> record('stage', [name: name]); body() }
        step('script') { Closure body -> body() }
        step('dir') { String path, Closure body -> record('dir', [path: path]); body() }
        step('timeout') { Map args, Closure body -> timeout(args, body) }
        step('lock') { Object args, Closure body -> lock(args, body) }
        step('milestone') { Object... args ->
            milestones++
            record('milestone', [ordinal: milestones, label: args ? args[0]?.label : null])
        }
        step('input') { Map args -> input(args) }
        step('withCredentials') { List bindings, Closure body -> withCredentials(bindings, body) }
        ['usernamePassword', 'string', 'file', 'sshUserPrivateKey'].each { String kind ->
            step(kind) { Map args -> [kind: kind] + args }
        }
        step('libraryResource') { String path ->
            File f = new File(root, "resources/${path}")
            if (!f.file) {
                throw new AbortException("No such library resource ${path} could be found.")
            }
            record('libraryResource', [path: path])
            f.text
        }
        step('writeFile') { Map args ->
            needWorkspace('writeFile')
            files[text(args.file)] = text(args.text)
            workspace().paths << text(args.file)
            record('writeFile', [file: text(args.file)])
        }
        step('readFile') { Object arg ->
            needWorkspace('readFile')
            String path = text(arg instanceof Map ? arg.file : arg)
            if (!files.containsKey(path)) {
                throw new NoSuchFileException(path)
            }
            files[path]
        }
        step('junit') { Map args ->
            needWorkspace('junit')
            record('junit', args.collectEntries { k, v -> [k, v instanceof GString ? v.toString() : v] })
        }
        step('archiveArtifacts') { Map args ->
            needWorkspace('archiveArtifacts')
            record('archiveArtifacts', [artifacts: text(args.artifacts)] + args.findAll { k, v -> k != 'artifacts' })
        }
        binding.setVariable('scm', [class: 'GitSCM', revision: commit])
        step('checkout') { Map scm ->
            needWorkspace('checkout')
            Map ws = workspace()
            ws.commit = scm.revision
            ws.paths.addAll(repository)
            record('checkout', [commit: ws.commit])
        }
        step('stash') { Map args ->
            needWorkspace('stash')
            String includes = text(args.includes)
            Set<String> taken = workspace().paths.findAll { matchesAny(it, includes) } as Set
            if (!taken && !args.allowEmpty) {
                throw new AbortException('No files included in stash')
            }
            stashes[args.name] = [paths: taken, commit: workspace().commit]
            record('stash', [name: args.name, includes: includes])
        }
        step('unstash') { String name ->
            needWorkspace('unstash')
            if (!stashes.containsKey(name)) {
                throw new AbortException("No such saved stash '${name}'")
            }
            workspace().paths.addAll(stashes[name].paths)
            record('unstash', [name: name])
        }
        step('pipeline') { Closure body -> new Declarative(this).run(body) }
    }

    /** A step: before it runs, the CPS program is saved (CpsRecorder checks what it holds). */
    private void step(String name, Closure impl) {
        binding.setVariable(name) { Object[] args ->
            CpsRecorder.atStep(name)
            impl.call(*(args as List))
        }
    }

    private Object sh(Object arg) {
        Map args = arg instanceof Map ? arg : [script: arg]
        Object script = args.script
        record('sh', [script: text(script), gstring: script instanceof GString,
                      returnStdout: args.returnStdout ?: false, returnStatus: args.returnStatus ?: false,
                      credentialVariables: boundVariables.sort(), commit: currentNode ? workspace().commit : null])
        needWorkspace('sh')
        String missing = missingInput(text(script))
        if (missing) {
            log << "pytools: '${missing}' not found in the workspace of ${currentNode} (commit ${workspace().commit})".toString()
            throw new AbortException('script returned exit code 2')
        }
        rolloutRecord(text(script))
        Map rule = shRules.find { text(script) =~ it.pattern } ?: [stdout: '', status: 0]
        if (args.returnStatus) {
            return rule.status
        }
        if (rule.status != 0) {
            throw new AbortException("script returned exit code ${rule.status}")
        }
        return args.returnStdout ? rule.stdout : null
    }

    /** The repository file a pytools command line needs but the workspace lacks, if any. */
    private String missingInput(String script) {
        List<String> needed = []
        java.util.regex.Matcher venv = script =~ /^bash '\.model-cicd\/pytools-venv\.sh' '([^']+)'/
        if (venv.find()) {
            needed << venv.group(1)
        }
        java.util.regex.Matcher fleet = script =~ /'--fleet' '([^']+)'/
        if (fleet.find()) {
            needed << fleet.group(1)
        }
        return needed.find { !workspace().paths.contains(it) }
    }

    /** `pytools rollout` keeps its record in the workdir; `--resume` needs it (pytools: no such rollout). */
    private void rolloutRecord(String script) {
        java.util.regex.Matcher m = script =~ /'rollout' '([^']+)' '([^']+)' .*'--workdir' '([^']+)'/
        if (!m.find() || script.contains("'--dry-run'")) {
            return
        }
        String path = "${m.group(3)}/rollouts/${m.group(1)}-${m.group(2)}.json"
        if (script.contains("'--resume'") && !workspace().paths.contains(path)) {
            log << "error: no rollout record ${path} to resume".toString()
            throw new AbortException('script returned exit code 2')
        }
        workspace().paths << path
    }

    /** Ant-style `includes` (comma-separated, `**` and `*`) as Jenkins' stash applies them. */
    private boolean matchesAny(String path, String includes) {
        return includes.split(',')*.trim().any { String glob ->
            String regex = glob.replace('.', '\\.').replace('**/', '\u0000').replace('**', '\u0001')
                .replace('*', '[^/]*').replace('\u0000', '(.*/)?').replace('\u0001', '.*')
            path ==~ regex
        }
    }

    /** The labels of the agent Jenkins picks for a label expression: every label it asks for. */
    private List<String> agentLabels(String expression) {
        return (expression =~ /(!\s*)?([^\s!()&|<>-][^\s!()&|<>]*)/).findAll { it[1] == null }.collect { it[2] }
    }

    private Object node(Object[] args) {
        String label = args.length > 1 ? text(args[0]) : null
        Closure body = (Closure) args[-1]
        record('node', [label: label])
        String previous = currentNode
        Map saved = [NODE_NAME: env.NODE_NAME, NODE_LABELS: env.NODE_LABELS]
        currentNode = label ?: 'any'
        env.NODE_NAME = "${currentNode}-agent-1".toString()
        env.NODE_LABELS = "${agentLabels(currentNode).join(' ')} ${env.NODE_NAME}".toString()
        try {
            return body()
        } finally {
            currentNode = previous
            env.putAll(saved)
        }
    }

    private Object timeout(Map args, Closure body) {
        record('timeout', [time: args.time, unit: args.unit])
        timeoutDepth++
        try {
            return body()
        } finally {
            timeoutDepth--
        }
    }

    private Object lock(Object args, Closure body) {
        String resource = text(args instanceof Map ? args.resource : args)
        record('lock', [resource: resource, inversePrecedence: args instanceof Map ? args.inversePrecedence : null])
        if (!heldLocks.add(resource)) {
            throw new AssertionError("lock ${resource} re-entered: the build would deadlock")
        }
        try {
            return body()
        } finally {
            heldLocks.remove(resource)
        }
    }

    private String refusal(Object submitter) {
        // Jenkins' own words when someone outside `submitter` tries to settle an input.
        return "You need to be ${submitter} to submit this".toString()
    }

    private boolean canSettle(String user, String submitter) {
        // pipeline-input-step: no submitter = Job/Build; Administer may settle any input
        if (submitter == null || admins.contains(user)) {
            return true
        }
        Set<String> allowed = submitter.split(',')*.trim() as Set
        return allowed.contains(user) || (groups[user] ?: []).any { allowed.contains(it) }
    }

    private Object input(Map args) {
        record('input', [id: args.id, message: text(args.message), ok: args.ok, submitter: args.submitter,
                         submitterParameter: args.submitterParameter, inTimeout: timeoutDepth > 0,
                         locks: heldLocks.sort()])
        if (!inputAnswers) {
            throw new AssertionError("input '${args.message}' reached but the test scripted no answer")
        }
        Map answer = inputAnswers.remove(0)
        for (String user in (answer.attempts ?: [])) {
            // Jenkins answers 403 "You need to be <submitter> to submit this" and keeps waiting.
            if (!canSettle(user, text(args.submitter))) {
                record('inputRefused', [user: user, message: refusal(args.submitter)])
            }
        }
        if (answer.abortBy) {
            if (!canSettle(answer.abortBy, text(args.submitter)) && !cancellers.contains(answer.abortBy)) {
                throw new AssertionError("${answer.abortBy} may not abort this input")
            }
            throw new FlowInterruptedException('ABORTED', new Rejection(new User(id: answer.abortBy)))
        }
        if (answer.approveBy && canSettle(answer.approveBy, text(args.submitter))) {
            String via = answer.via ?: 'submit'
            record('inputApproved', [user: answer.approveBy, via: via])
            // Before 532.v9e7466cb_4406, proceedEmpty ignored submitterParameter: input returned null.
            boolean dropsApprover = via == 'proceedEmpty' && oldInputPlugin
            return args.submitterParameter && !dropsApprover ? answer.approveBy : null
        }
        if (answer.approveBy) {
            record('inputRefused', [user: answer.approveBy, message: refusal(args.submitter)])
        }
        if (timeoutDepth > 0) {
            throw new FlowInterruptedException('ABORTED', TimeoutStepExecution.exceeded())
        }
        throw new AssertionError(
            "input '${args.message}' is never settled and has no timeout: the build would wait forever")
    }

    private Object withCredentials(List bindings, Closure body) {
        Map<String, String> exposed = [:]
        for (Map b in bindings) {
            Map stored = credentials[b.credentialsId]
            if (stored == null) {
                throw new AbortException("Could not find credentials entry with ID '${b.credentialsId}'")
            }
            if (stored.kind != b.kind) {
                throw new AbortException(
                    "Credentials '${b.credentialsId}' is of type '${stored.kind}' where '${b.kind}' was expected")
            }
            switch (b.kind) {
                case 'usernamePassword':
                    exposed[b.usernameVariable] = stored.username
                    exposed[b.passwordVariable] = stored.password
                    break
                case 'string':
                    exposed[b.variable] = stored.secret
                    break
                case 'file':
                    exposed[b.variable] = "/tmp/secretFiles/${b.credentialsId}".toString()
                    secrets << stored.content
                    break
                default:
                    exposed[b.keyFileVariable] = "/tmp/secretFiles/${b.credentialsId}".toString()
                    if (b.usernameVariable) {
                        exposed[b.usernameVariable] = stored.username
                    }
                    secrets << stored.key
            }
        }
        secrets.addAll(exposed.values().findAll { it && !it.startsWith('/tmp/secretFiles/') })
        record('withCredentials', [ids: bindings*.credentialsId, variables: exposed.keySet().sort()])
        Map saved = exposed.keySet().collectEntries { [it, env[it]] }
        env.putAll(exposed)
        boundVariables.addAll(exposed.keySet())
        try {
            return body()
        } finally {
            boundVariables.removeAll(exposed.keySet())
            env.putAll(saved)
            saved.each { k, v -> if (v == null) { env.remove(k) } }
        }
    }
}
