import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.SourceUnit

/**
 * The compile-time checks of Pipeline: Declarative (pipeline-model-definition's ModelParser) that
 * the library's `pipeline { }` must pass: inside `steps { }` and the `post` conditions, each
 * statement is one step call (a step or a global variable called by name), and a closure given to
 * a step (timeout, dir, withCredentials...) is again a steps block; anything else, such as
 * `def x = publish(...)`, `if`, or `foo.bar()`, must sit in `script { }`. The messages are
 * Declarative's own.
 */
class DeclarativeRules {
    static final Set<String> POST_CONDITIONS = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure',
                                                 'success', 'unstable', 'unsuccessful', 'cleanup'] as Set
    final SourceUnit source

    DeclarativeRules(SourceUnit source) {
        this.source = source
    }

    static List<Expression> args(MethodCallExpression call) {
        Expression a = call.arguments
        return a instanceof TupleExpression ? ((TupleExpression) a).expressions : [a]
    }

    static ClosureExpression closureArg(MethodCallExpression call) {
        List<Expression> a = args(call)
        return a && a[-1] instanceof ClosureExpression ? (ClosureExpression) a[-1] : null
    }

    static List<Statement> statements(ClosureExpression c) {
        return c.code instanceof BlockStatement ? ((BlockStatement) c.code).statements : [c.code]
    }

    void check(ClassNode classNode) {
        DeclarativeRules rules = this
        CodeVisitorSupport finder = new CodeVisitorSupport() {
            @Override
            void visitMethodCallExpression(MethodCallExpression call) {
                if (call.implicitThis && call.methodAsString == 'pipeline' && closureArg(call)) {
                    rules.sections(closureArg(call))
                } else {
                    super.visitMethodCallExpression(call)
                }
            }
        }
        classNode.methods.each { it.code?.visit(finder) }
    }

    /** Walk the directives; validate every steps block (and post condition). */
    void sections(ClosureExpression block) {
        for (Statement s in statements(block)) {
            Expression e = s instanceof ExpressionStatement ? ((ExpressionStatement) s).expression : null
            if (!(e instanceof MethodCallExpression)) {
                continue
            }
            MethodCallExpression call = (MethodCallExpression) e
            ClosureExpression body = closureArg(call)
            if (body == null) {
                continue
            }
            String name = call.methodAsString
            if (name == 'steps' || name in POST_CONDITIONS) {
                steps(body)
            } else if (name in ['stages', 'stage', 'post', 'parallel', 'matrix']) {
                sections(body)
            }
        }
    }

    void steps(ClosureExpression block) {
        for (Statement s in statements(block)) {
            Expression e = s instanceof ExpressionStatement ? ((ExpressionStatement) s).expression : null
            if (!(e instanceof MethodCallExpression)) {
                fail(s, 'Expected a step')
            }
            MethodCallExpression call = (MethodCallExpression) e
            if (!call.implicitThis) {
                fail(s, 'Method calls on objects not allowed outside "script" blocks.')
            }
            ClosureExpression body = closureArg(call)
            if (body != null && call.methodAsString != 'script') {
                steps(body)
            }
        }
    }

    private void fail(ASTNode node, String message) {
        throw new DeclarativeViolation("WorkflowScript (${source.name}): ${node.lineNumber}: ${message} " +
            "@ line ${node.lineNumber}, column ${node.columnNumber}.")
    }
}

/** A declarative compile error: Jenkins fails the whole build before any stage runs. */
class DeclarativeViolation extends RuntimeException {
    DeclarativeViolation(String message) {
        super(message)
    }
}
