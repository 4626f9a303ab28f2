import groovy.transform.CompileStatic

/**
 * What the CPS runtime of workflow-cps would have to save at each step call, and the two rules it
 * enforces there (CpsTransform instruments the library's code to report into this):
 * - every local variable and parameter of every CPS frame on the stack (methods and closures of
 *   vars/*.groovy not marked @NonCPS) is serialised with Java serialisation; a value that is not
 *   Serializable (a java.util.regex.Matcher, a JsonSlurper LazyMap, an Iterator...) fails the
 *   build with java.io.NotSerializableException, as Jenkins does when it saves the program;
 * - a step called while a @NonCPS method runs is an error (steps need the CPS machinery).
 * Pipeline objects Jenkins pickles itself (the library's global variables, `currentBuild`, the
 * harness' declarative DSL) are replaced before serialising, as Jenkins' pickles do.
 */
class CpsRecorder {
    static final List<Map> FRAMES = []
    static final List<String> NON_CPS = []
    static final Set<String> PICKLED = ['PipelineHarness', 'FakeRun', 'Declarative', 'OptionsDsl', 'PostDsl'] as Set

    static void reset() {
        FRAMES.clear()
        NON_CPS.clear()
    }

    static void enter(String frame) {
        FRAMES << [name: frame, vars: [:]]
    }

    /** Pop up to and including `frame` (inner frames an exception unwound go with it). */
    static void exit(String frame) {
        int at = FRAMES.findLastIndexOf { it.name == frame }
        if (at >= 0) {
            FRAMES.subList(at, FRAMES.size()).clear()
        }
    }

    static Object hold(String variable, Object value) {
        if (FRAMES && !NON_CPS) {
            FRAMES[-1].vars[variable] = value
        }
        return value
    }

    static void enterNonCps(String method) {
        NON_CPS << method
    }

    static void exitNonCps() {
        NON_CPS.remove(NON_CPS.size() - 1)
    }

    /** Called by the harness before every step runs: the program is saved here. */
    static void atStep(String step) {
        if (NON_CPS) {
            throw new CpsViolation("${step}: a pipeline step was called inside the @NonCPS method " +
                "${NON_CPS[-1]}; steps may only be called from CPS-transformed code")
        }
        for (Map frame in FRAMES) {
            frame.vars.each { String name, Object value -> checkSerializable(step, frame.name, name, value) }
        }
    }

    private static void checkSerializable(String step, String frame, String name, Object value) {
        try {
            new PickleStream().writeObject(value)
        } catch (NotSerializableException e) {
            throw new CpsViolation("java.io.NotSerializableException: ${e.message}: held in '${name}' of " +
                "${frame} when the step ${step} ran (the CPS program cannot be saved; keep such values " +
                'inside a @NonCPS method)')
        }
    }
}

/** Java serialisation with Jenkins' pickles: objects Jenkins persists its own way are replaced. */
// Statically compiled: Groovy 2.4's dynamic calls cannot reach ObjectOutputStream's protected methods on Java 17.
@CompileStatic
class PickleStream extends ObjectOutputStream {
    PickleStream() {
        super(new ByteArrayOutputStream())
        enableReplaceObject(true)
    }

    @Override
    protected Object replaceObject(Object obj) {
        if (obj instanceof Script || CpsRecorder.PICKLED.contains(obj.getClass().name.tokenize('$')[0])) {
            return obj.getClass().name
        }
        return obj
    }
}

/** A CPS rule broken: an Error, so no `catch (Exception)` in the library can swallow it. */
// groovylint-disable-next-line ExceptionExtendsError
class CpsViolation extends Error {
    CpsViolation(String message) {
        super(message)
    }
}
