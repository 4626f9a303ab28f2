// Finds tests/groovy/tests/*Test.groovy, runs every `test*` method on a fresh instance, prints
// PASS/FAIL per test and the closing line "N passed, N failed".
import java.lang.reflect.InvocationTargetException
import java.lang.reflect.Method

File root = new File(args ? args[0] : '.').canonicalFile
System.setProperty('repo.root', root.path)
List<File> files = new File(root, 'tests/groovy/tests').listFiles().findAll { it.name.endsWith('Test.groovy') }.sort()
int passed = 0
int failed = 0
for (File f in files) {
    Class testClass = this.class.classLoader.parseClass(f)
    List<Method> methods = testClass.declaredMethods.findAll { it.name.startsWith('test') }.sort { it.name }
    for (Method m in methods) {
        String name = "${testClass.simpleName}.${m.name}"
        try {
            m.invoke(testClass.newInstance())
            passed++
            println "PASS ${name}"
        } catch (InvocationTargetException e) {
            failed++
            println "FAIL ${name}"
            println e.cause.toString().readLines().collect { '    ' + it }.join('\n')
        }
    }
}
println "${passed} passed, ${failed} failed"
System.exit(failed ? 1 : 0)
