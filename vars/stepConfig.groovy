// Shared plumbing of the model-cicd steps: config merging, shell quoting, running pytools stages.
// The steps stay thin: every decision about models lives in `pytools`.
import com.cloudbees.groovy.cps.NonCPS

/** The keys of every step that runs pytools: where its virtualenv comes from. */
Map pytoolsDefaults() {
    return [requirements: 'requirements.txt', python: 'python3', cacheRoot: null]
}

/** The keys every pytools stage step accepts, with their defaults (see stepConfig.txt). */
Map stageDefaults() {
    return pytoolsDefaults() + [config: 'model.yaml', workdir: 'work/ci', force: false]
}

/** `given` merged over `defaults`; a key the step does not document is an error naming it. */
Map merge(String step, Map defaults, Map given) {
    Map config = given ?: [:]
    List unknown = unknownKeys(defaults, config)
    if (unknown) {
        error("${step}: unknown config key(s): ${unknown.join(', ')} " +
              "(allowed: ${sortedKeys(defaults).join(', ')})")
    }
    Map merged = [:]
    merged.putAll(defaults)
    merged.putAll(config)
    return merged
}

/** Fail with one clear line when a required key is missing or empty. */
void require(String step, Map config, List keys) {
    List missing = missingKeys(config, keys)
    if (missing) {
        error("${step}: missing required config key(s): ${missing.join(', ')}")
    }
}

/** Run `pytools <command...> CONFIG --workdir W [--force] [extra...]` in the cached venv. */
Object runStage(Map cfg, List command, List extra = [], String rawArgs = null, boolean status = false) {
    List words = command + [cfg.config, '--workdir', cfg.workdir]
    if (cfg.force) {
        words << '--force'
    }
    return pytools(args: words + extra, rawArgs: rawArgs, returnStatus: status,
                   requirements: cfg.requirements, python: cfg.python, cacheRoot: cfg.cacheRoot)
}

/** The pytools-step options of a step config (for steps that call pytools with their own args). */
Map pytoolsOptions(Map cfg) {
    return [requirements: cfg.requirements, python: cfg.python, cacheRoot: cfg.cacheRoot]
}

/** Registry credential keys shared by publish, promote and rollout. */
Map registryDefaults() {
    return [registryCredentialsId: null, registryCredentialsType: 'usernamePassword']
}

/**
 * Run `body` with the registry credentials bound to environment variables that pytools reads
 * (ARTIFACTORY_USER/ARTIFACTORY_PASSWORD, or ARTIFACTORY_TOKEN). The secrets never pass through
 * Groovy strings: commands refer to them only as shell variables.
 */
Object withRegistry(String step, Map cfg, Closure body) {
    String id = cfg.registryCredentialsId
    if (id == null) {
        return body()
    }
    if (!id.trim()) {
        error("${step}: registryCredentialsId is empty; give a Jenkins credentials id or leave it unset")
    }
    List bindings
    if (cfg.registryCredentialsType == 'usernamePassword') {
        bindings = [usernamePassword(credentialsId: id, usernameVariable: 'ARTIFACTORY_USER',
                                     passwordVariable: 'ARTIFACTORY_PASSWORD')]
    } else if (cfg.registryCredentialsType == 'string') {
        bindings = [string(credentialsId: id, variable: 'ARTIFACTORY_TOKEN')]
    } else {
        error("${step}: registryCredentialsType must be 'usernamePassword' or 'string', " +
              "not '${cfg.registryCredentialsType}'")
    }
    return withCredentials(bindings) {
        body()
    }
}

/** True when the current agent satisfies the label expression (so a step can run in place). */
boolean onAgentWithLabel(String expression) {
    return env.NODE_NAME && labelMatches(expression, labelsOf(env.NODE_LABELS))
}

/** One shell word: single-quoted, so neither Groovy nor the shell expands anything in it. */
@NonCPS
String quote(Object value) {
    return "'" + value.toString().replace("'", "'\\''") + "'"
}

/** A shell command line from words, each quoted. */
@NonCPS
String command(List words) {
    return words.collect { word -> quote(word) }.join(' ')
}

@NonCPS
List unknownKeys(Map defaults, Map given) {
    return given.keySet().findAll { key -> !defaults.containsKey(key) }*.toString().sort()
}

@NonCPS
List sortedKeys(Map map) {
    return map.keySet()*.toString().sort()
}

@NonCPS
List missingKeys(Map config, List keys) {
    return keys.findAll { key -> config[key] == null || config[key].toString().trim() == '' }
}

@NonCPS
List labelsOf(String labels) {
    return (labels ?: '').split(/\s+/).findAll { label -> label } as List
}

/**
 * Jenkins' label expression grammar as far as agent selection uses it: atoms, `!`, `&&`, `||`,
 * `->`, `<->` and parentheses (precedence as in hudson.model.labels). True when `labels` satisfy it.
 */
@NonCPS
boolean labelMatches(String expression, List labels) {
    List tokens = (expression =~ /<[-]>|[-]>|&&|\|\||[!()]|[^\s!()&|<>-][^\s!()&|<>]*/).collect { it }
    List position = [0]
    boolean result = labelImplies(tokens, position, labels as Set)
    if (position[0] != tokens.size()) {
        // Not the error step: steps cannot run inside @NonCPS code.
        throw new IllegalArgumentException("label expression '${expression}': unexpected '${tokens[position[0]]}'")
    }
    return result
}

@NonCPS
boolean labelImplies(List tokens, List position, Set labels) {
    boolean left = labelOr(tokens, position, labels)
    while (position[0] < tokens.size() && tokens[position[0]] in ['->', '<->']) {
        String op = tokens[position[0]++]
        boolean right = labelOr(tokens, position, labels)
        left = op == '->' ? (!left || right) : (left == right)
    }
    return left
}

@NonCPS
boolean labelOr(List tokens, List position, Set labels) {
    boolean left = labelAnd(tokens, position, labels)
    while (position[0] < tokens.size() && tokens[position[0]] == '||') {
        position[0]++
        left = labelAnd(tokens, position, labels) || left
    }
    return left
}

@NonCPS
boolean labelAnd(List tokens, List position, Set labels) {
    boolean left = labelAtom(tokens, position, labels)
    while (position[0] < tokens.size() && tokens[position[0]] == '&&') {
        position[0]++
        left = labelAtom(tokens, position, labels) && left
    }
    return left
}

@NonCPS
boolean labelAtom(List tokens, List position, Set labels) {
    String token = position[0] < tokens.size() ? tokens[position[0]++] : null
    if (token == '!') {
        return !labelAtom(tokens, position, labels)
    }
    if (token == '(') {
        boolean inner = labelImplies(tokens, position, labels)
        if (position[0] >= tokens.size() || tokens[position[0]++] != ')') {
            throw new IllegalArgumentException('label expression: missing )')
        }
        return inner
    }
    if (token == null || token in [')', '&&', '||', '->', '<->']) {
        throw new IllegalArgumentException("label expression: expected a label, found ${token ?: 'the end'}")
    }
    return labels.contains(token.replaceAll(/^"|"$/, ''))
}
