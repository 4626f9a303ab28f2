/**
 * Base class of every loaded `vars/*.groovy` script. As in Jenkins, a script calls pipeline steps
 * and other global variables by name: those live in the binding (closures for steps, scripts for
 * the library's own variables, whose `call` method runs).
 */
abstract class PipelineScript extends Script {
    Object methodMissing(String name, Object args) {
        Object target = binding.hasVariable(name) ? binding.getVariable(name) : null
        if (target instanceof Closure) {
            return ((Closure) target).call(args as Object[])
        }
        if (target instanceof Script) {
            return ((Script) target).invokeMethod('call', args)
        }
        throw new MissingMethodException(name, getClass(), args as Object[])
    }
}
