use pyo3::prelude::*;

#[pymodule]
fn hami_rustcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", hami_sched::VERSION)?;
    Ok(())
}
