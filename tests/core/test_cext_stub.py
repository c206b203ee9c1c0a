"""grpcpy/_cext.pyi names exactly what grpcpy._cext offers: every public
name the stub declares exists in the module (and on the class it is declared
for), and every public name of the module and of its classes is in the stub."""
import ast
import enum
import pathlib

import grpcpy
from grpcpy import _cext

STUB = pathlib.Path(grpcpy.__file__).with_name("_cext.pyi")


def stub_tree():
    """{top-level name: ast node} of the stub."""
    names = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names[target.id] = node
    return names


def class_members(node, tree):
    """Names a stub class declares, with those of its stub base classes."""
    out = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            out.add(item.name)
        elif isinstance(item, ast.AnnAssign):
            out.add(item.target.id)
        elif isinstance(item, ast.Assign):
            out.update(t.id for t in item.targets)
    for base in node.bases:
        if isinstance(base, ast.Name) and isinstance(tree.get(base.id), ast.ClassDef):
            out |= class_members(tree[base.id], tree)
    return out


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_declares_only_what_the_module_has():
    tree = stub_tree()
    missing = sorted(n for n in public(tree) if not hasattr(_cext, n))
    assert not missing, "in the stub, not in grpcpy._cext: %s" % missing


def test_module_has_nothing_the_stub_omits():
    tree = stub_tree()
    module_names = public(n for n in vars(_cext) if not isinstance(vars(_cext)[n], type(_cext)))
    omitted = sorted(module_names - set(tree))
    assert not omitted, "in grpcpy._cext, not in the stub: %s" % omitted


def test_class_members_match():
    tree = stub_tree()
    problems = []
    for name, node in sorted(tree.items()):
        if not isinstance(node, ast.ClassDef) or name.startswith("_") and not hasattr(_cext, name):
            continue
        cls = getattr(_cext, name)
        if issubclass(cls, (BaseException, enum.Enum)):
            continue        # instance attributes set in __init__; enum members are listed above
        declared = public(class_members(node, tree))
        for member in sorted(declared - public(dir(cls))):
            problems.append("%s.%s is in the stub, not on the class" % (name, member))
        for member in sorted(public(dir(cls)) - declared):
            problems.append("%s.%s is on the class, not in the stub" % (name, member))
    assert not problems, "\n".join(problems)
